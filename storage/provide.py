"""The one way into storage for a command: a ``--storage`` choice becomes a plan, the plan is applied and checked.

``sharedvol provision`` and ``sharedvol run`` both call :func:`provide`, and get back what was planned, what
was made, and the lines to show. The steps, in order: the choice's plan (:func:`storage.plan.make`: a class
that cannot serve RWX, or ``sharedvol-hostpath`` without a running provisioner, is refused there, whichever
way it was named); then, unless only a check is asked for, :func:`storage.apply.apply` (create the PV and the
claim, wait until Bound, hand a static hostPath volume to the steps' user). Transport failures anywhere in
between are one line (:func:`storage.kube.reachable`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client

from storage import apply, choice, doctor, errors, kube, nodes, plan
from storage import prepare as prep

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Survey:
    """What ``sharedvol run`` checks before it plans: doctor's findings and a node for its training step.

    Attributes:
        step: the step that needs a node (for messages), e.g. ``train-resnet``.
        node_selector: the step's ``nodeSelector``.
        gpus: the GPUs it asks for (``nvidia.com/gpu``); 0: none.
    """

    step: str
    node_selector: dict[str, str] = field(default_factory=dict)
    gpus: int = 0


@dataclass(frozen=True)
class Ask:
    """What a command asks of storage.

    Attributes:
        choice: where the volume comes from (``--storage``).
        name: the claim's name (``PersistentVolumeClaim.metadata.name``).
        namespace: the claim's namespace.
        size: the claim's request (``spec.resources.requests.storage``).
        host_path_base: base directory on the node for a static hostPath PV. Default /var/lib/sharedvol.
        node: the node of a static hostPath PV; None: the first Ready node.
        timeout_s: seconds to wait for Bound (and for the prepare pod). Default 120.
        prepare: hand a static hostPath volume's root to the steps' user (None: leave it as kubelet makes it).
        make: create what the plan says; False: plan (and check) only (``--dry-run``).
        per_run_claims: a dynamic class's claims are made by each pipeline run (``sharedvol run``): only check
            the class, make no claim now; a class or claim the credentials may not check is used as given.
        survey: first report doctor's findings and the nodes that fit a step (None: skip).
        checks: the caller's own checks, run after the survey and before the plan (``run``: the KFP API
            answers), so nothing is made before every check passed.
        progress: receives each line as it happens: (``doctor``, line) for the survey, (``storage``, line) after.
    """

    choice: choice.Choice
    name: str
    namespace: str
    size: str
    host_path_base: str = plan.DEFAULT_BASE
    node: str | None = None
    timeout_s: float = 120.0
    prepare: prep.Settings | None = None
    make: bool = True
    per_run_claims: bool = False
    survey: Survey | None = None
    checks: Callable[[], None] | None = None
    progress: Callable[[str, str], None] = lambda stage, line: None


@dataclass
class Provided:
    """What :func:`provide` planned, made and found.

    Attributes:
        plan: the plan (None for ``static:PV``, which is used as given).
        result: what applying it did (None when nothing was applied: a check or a dry run).
        created: ``Kind/name`` of each object made, in order.
        lines: what happened to the volume, for people, one entry per step (the plan's may span lines).
        strategy: the strategy doctor reported (``unknown`` when it could not look; "" without a survey).
        nodes: the Ready nodes the surveyed step can run on (empty: not surveyed, or not allowed to list).
        notes: what the user should know (checks skipped for lack of permission).
        surveyed: the survey's doctor report (None: no survey, or not allowed to look); the plan reuses what it
            read of the cluster (the fallback's heartbeat, sharedvol-nfs's health) instead of reading it again.
    """

    plan: plan.Plan | None
    result: apply.Result | None = None
    created: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    strategy: str = ""
    nodes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    surveyed: doctor.Report | None = None

    def say(self, ask: Ask, line: str) -> None:
        """Keep a storage line and pass it on as it happens."""
        self.lines.append(line)
        ask.progress("storage", line)


def provide(api: client.ApiClient, ask: Ask) -> Provided:
    """Survey (when asked), run the caller's checks, plan ``ask``, apply the plan unless asked not to.

    Raises:
        InvalidRequestError, NotFoundError, ConflictError, ForbiddenError, BindError, PrepareError: as
            :func:`storage.plan.make` and :func:`storage.apply.apply`, each one line with its fix.
        NoNodeError: the surveyed step fits no Ready node.
        ApiError: the API server did not answer.
    """
    done = Provided(None)
    if ask.survey is not None:
        with kube.reachable("check the cluster", api):
            _survey(api, ask, ask.survey, done)
    if ask.checks is not None:
        ask.checks()
    with kube.reachable(f"provide storage for claim {ask.namespace}/{ask.name}", api):
        _provide(api, ask, done)
    return done


def _survey(api: client.ApiClient, ask: Ask, survey: Survey, done: Provided) -> None:
    try:
        report = doctor.diagnose(api, ask.namespace)
    except errors.ForbiddenError as e:
        ask.progress("doctor", f"skipped ({e.message})")
        done.notes.append(
            "doctor could not inspect the cluster with these credentials; `sharedvol doctor` as an admin can"
        )
        done.strategy = "unknown"
    else:
        for line in report.progress_lines():
            ask.progress("doctor", line)
        done.strategy, done.surveyed = report.strategy, report
    fit = nodes.fitting(api, survey.step, survey.node_selector, survey.gpus)
    for line in fit.lines:
        ask.progress("doctor", line)
    done.nodes, done.notes = fit.names, done.notes + fit.notes


def _provide(api: client.ApiClient, ask: Ask, done: Provided) -> None:
    if ask.choice.kind == "pv" and ask.per_run_claims:
        done.say(ask, f"PersistentVolume {ask.choice.name} (as given)")
        return
    node = ask.node or (done.nodes[0] if done.nodes else None)
    request = plan.Request(ask.name, ask.namespace, ask.size, host_path_base=ask.host_path_base, node=node)
    request = dataclasses.replace(request, **ask.choice.plan_fields())
    if done.surveyed is not None:  # what the survey read of the cluster: not read twice
        seen = done.surveyed
        request = dataclasses.replace(request, fallback_running=seen.fallback_running, nfs_health=seen.nfs_health)
    explicit = ask.choice.kind in ("class", "claim")
    try:
        p = plan.make(api, request)
        if explicit and ask.per_run_claims and p.strategy == "existing":
            apply.apply(api, p, wait=False)  # checks the claim: it exists, is RWX and Bound
    except errors.ForbiddenError as e:
        if not (explicit and ask.per_run_claims):
            raise
        done.say(ask, f"{ask.choice} (as given; not checked: {e.message})")
        done.notes.append("the storage choice was not checked (no permission); a wrong one shows as a Pending claim")
        return
    done.plan = p
    done.say(ask, p.describe())
    handover = ask.prepare is not None and p.volume is not None and bool(p.volume.host_path)
    if handover and ask.prepare is not None:
        done.say(
            ask,
            f"then run pod {prep.pod_name(ask.name)} ({ask.prepare.image}) to hand the volume's root to "
            f"{ask.prepare.owner}, mode {ask.prepare.mode:04o}",
        )
    if not ask.make or (ask.per_run_claims and p.strategy in ("dynamic", "existing")):
        return
    result = apply.apply(api, p, timeout=ask.timeout_s, prepare=ask.prepare if handover else None)
    done.result, done.created = result, list(result.created)
    who = f"claim {ask.namespace}/{p.request.existing or ask.name}"
    for made in result.created:
        done.say(ask, f"created {made}")
    if not result.created and p.strategy != "existing":
        done.say(ask, f"{who} exists already and matches: reusing it")
    if result.phase == "Bound":
        done.say(ask, f"{who} is Bound to PersistentVolume {result.volume}")
    else:
        done.say(ask, f"{who} is {result.phase}" + (f": {result.note}" if result.note else ""))
    if result.prepared is not None:
        done.say(ask, result.prepared.describe())
