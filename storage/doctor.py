"""``sharedvol doctor``: what storage the cluster offers and why each Pending claim is pending.

It also says which strategy a run gets, whether StorageClass sharedvol-nfs works (:mod:`storage.nfshealth`),
and for each Pending claim the command that fixes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kubernetes import client

from sharedvol.errors import one_line
from storage import classes, errors, hints, nfshealth, plan, runs, validate

EVENT_MESSAGE_CAP = 500  # characters of an Event's message that doctor repeats


@dataclass(frozen=True)
class Diagnosis:
    """Why one claim is Pending.

    Attributes:
        namespace: the claim's namespace.
        name: the claim's name.
        storage_class: its ``spec.storageClassName`` ("" static, None unset).
        access_modes: its ``spec.accessModes``.
        cause: a short code: no-class, missing-class, rwx-unsupported, no-provisioner, wait-for-consumer,
            missing-volume, volume-taken, provisioning-failed, unknown.
        explanation: one sentence.
        fix: the command (or step) that fixes it.
    """

    namespace: str
    name: str
    storage_class: str | None
    access_modes: list[str]
    cause: str
    explanation: str
    fix: str


@dataclass
class Report:
    """Everything doctor found.

    ``nfs_health``: what :func:`storage.nfshealth.check` found of StorageClass sharedvol-nfs (None: not installed).
    """

    classes: list[classes.ClassInfo]
    strategy: str
    strategy_reasons: list[str]
    pending: list[Diagnosis] = field(default_factory=list)
    fallback_running: bool | None = None
    finished_runs: list[runs.LeftVolume] = field(default_factory=list)
    held: list[runs.HeldVolume] = field(default_factory=list)
    nfs_health: nfshealth.Health | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        return {
            "classes": [asdict(c) for c in self.classes],
            "strategy": self.strategy,
            "strategy_reasons": self.strategy_reasons,
            "pending_claims": [asdict(d) for d in self.pending],
            "fallback_provisioner_running": self.fallback_running,
            "finished_run_volumes": [asdict(v) for v in self.finished_runs],
            "deleted_claims_held_by_finished_pods": [asdict(v) for v in self.held],
            "nfs_health": self.nfs_health.to_json() if self.nfs_health else None,
        }

    def progress_lines(self) -> list[str]:
        """The report as ``sharedvol run`` shows it before it makes anything: one line per finding."""
        found = ", ".join(f"{c.name} ({c.provisioner}, RWX {c.rwx})" for c in self.classes) or "none"
        lines = [f"StorageClasses: {found}"]
        names = {c.name for c in self.classes}
        lines += [
            f"{name} is not installed ({command})" for name, command in hints.BY_CLASS.items() if name not in names
        ]
        if self.fallback_running is False:
            lines.append(f"{classes.FALLBACK_CLASS}'s provisioner (`sharedvol serve`) is not running")
        if self.nfs_health is not None:
            lines.append(nfs_line(self.nfs_health))
        lines.append(f"a run gets: {self.strategy} ({'; '.join(self.strategy_reasons)})")
        lines += [f"Pending claim {d.namespace}/{d.name}: {d.explanation}; fix: {d.fix}" for d in self.pending]
        return lines

    def describe(self) -> str:
        """The report for people."""
        lines = ["StorageClasses:"]
        if not self.classes:
            lines.append("  none")
        for c in self.classes:
            default = " (default)" if c.default else ""
            lines.append(
                f"  {c.name}{default}: {c.provisioner}, {c.binding_mode}, reclaim {c.reclaim_policy}, "
                f"RWX {c.rwx}: {c.reason}"
            )
        if not any(c.name == classes.NFS_CLASS for c in self.classes):
            lines.append(f"  ({classes.NFS_CLASS} is not installed: {hints.INSTALL['nfs']})")
        elif self.nfs_health is not None:
            nfs = self.nfs_health
            state = {False: "not working", True: "working", None: "unknown (no problem found; not everything readable)"}
            lines.append(f"  {classes.NFS_CLASS} health: {state[nfs.working]}")
            lines += [f"    problem: {p}" for p in nfs.problems] + [f"    unknown: {u}" for u in nfs.unknown]
            lines += [f"    not checked: {n}" for n in nfs.not_checked]
        if not any(c.name == classes.FALLBACK_CLASS for c in self.classes):
            lines.append(f"  ({classes.FALLBACK_CLASS} is not installed: {hints.INSTALL['fallback']})")
        elif self.fallback_running is False:
            lines.append(
                f"  ({classes.FALLBACK_CLASS} is installed but its provisioner is not running (no fresh heartbeat "
                "Lease sharedvol-provisioner[-<node>]): kubectl -n sharedvol-system get ds,pods,lease; claims of that "
                "class stay Pending)"
            )
        lines.append(f"A run gets: {self.strategy}")
        lines += [f"  because {r}" for r in self.strategy_reasons]
        if not self.pending:
            lines.append("No Pending claims.")
        for d in self.pending:
            lines.append(
                f"Pending claim {d.namespace}/{d.name} ({', '.join(d.access_modes)}, class {d.storage_class!r}):"
            )
            lines.append(f"  why: {d.explanation}")
            lines.append(f"  fix: {d.fix}")
        if self.finished_runs:
            lines.append("Volumes of finished runs (kept for a retry or a resume; no running pod uses them):")
        for v in self.finished_runs:
            lines.append(f"  {v.namespace}/{v.name} ({v.size}, PersistentVolume {v.volume or 'none'}): {v.fix}")
        if self.held:
            lines.append(
                "Deleted claims that only finished pods hold (Terminating, their space still used, until the pods "
                "go; KFP keeps a run's pods until its workflow is garbage-collected):"
            )
        for h in self.held:
            lines.append(
                f"  {h.namespace}/{h.name} (PersistentVolume {h.volume or 'none'}, {len(h.pods)} pods): {h.fix}"
            )
        return "\n".join(lines)


def nfs_line(health: nfshealth.Health) -> str:
    """Whether StorageClass sharedvol-nfs works, in one line: its problems, or what could not be checked."""
    if health.working is False:
        return f"{classes.NFS_CLASS} is installed but not working: {'; '.join(health.problems)}"
    if health.working is None:
        return f"{classes.NFS_CLASS}: no problem found, but it could not all be checked: {'; '.join(health.unknown)}"
    rest = f" (not checked: {'; '.join(health.not_checked)})" if health.not_checked else ""
    return f"{classes.NFS_CLASS} works as far as doctor checks{rest}"


def _provision_fix(ns: str, name: str, size: str) -> str:
    return (
        f"{hints.INSTALL['nfs']} and recreate the claim with class {classes.NFS_CLASS}, or: "
        f"kubectl delete pvc {name} -n {ns} && sharedvol provision {name} -n {ns} --size {size} --static"
    )


def diagnose_claim(
    claim: client.V1PersistentVolumeClaim,
    infos: dict[str, classes.ClassInfo],
    events: list[client.CoreV1Event],
    pvs: dict[str, client.V1PersistentVolume],
    has_consumer: bool,
) -> Diagnosis:
    """Why ``claim`` (a V1PersistentVolumeClaim) is Pending, from its spec, its class, its events and the PVs (pure)."""
    ns, name = claim.metadata.namespace, claim.metadata.name
    sc = claim.spec.storage_class_name
    modes = list(claim.spec.access_modes or [])
    size = ((claim.spec.resources.requests or {}) if claim.spec.resources else {}).get("storage", "20Gi")
    # Events are anyone's text: reason and message are optional, and may be long or hold control characters
    reasons = [one_line(e.reason[:80]) for e in events if isinstance(e.reason, str)]
    last = {
        one_line(e.reason[:80]): one_line(e.message[:EVENT_MESSAGE_CAP]) if isinstance(e.message, str) else ""
        for e in events
        if isinstance(e.reason, str)
    }

    def d(cause: str, explanation: str, fix: str) -> Diagnosis:
        return Diagnosis(ns, name, sc, modes, cause, explanation, fix)

    volume = claim.spec.volume_name
    if volume:
        pv = pvs.get(volume)
        if pv is None:
            return d(
                "missing-volume",
                f"it asks for PersistentVolume {volume}, which does not exist",
                f"kubectl delete pvc {name} -n {ns} && sharedvol provision {name} -n {ns} --size {size} --static",
            )
        ref = pv.spec.claim_ref
        if ref is not None and (ref.namespace, ref.name) != (ns, name):
            return d(
                "volume-taken",
                f"PersistentVolume {volume} is reserved for claim {ref.namespace}/{ref.name}",
                f"this claim cannot have it: kubectl delete pvc {name} -n {ns}, then "
                f"sharedvol provision {name} -n {ns} --size {size} (a volume of its own)",
            )
    if sc is None:
        return d(
            "no-class",
            "it names no StorageClass and the cluster has no default class, so nothing will provision it",
            _provision_fix(ns, name, size),
        )
    if sc and sc not in infos:
        return d(
            "missing-class",
            f"StorageClass {sc} does not exist",
            hints.BY_CLASS.get(sc) or _provision_fix(ns, name, size),
        )
    info = infos.get(sc) if sc else None
    if "ProvisioningFailed" in last:
        message = last["ProvisioningFailed"]
        if "ReadWriteMany" in modes and info is not None and info.rwx == "no":
            return d(
                "rwx-unsupported",
                f"StorageClass {sc} ({info.provisioner}) cannot make ReadWriteMany volumes: {message}",
                _provision_fix(ns, name, size),
            )
        return d("provisioning-failed", f"the provisioner failed: {message}", "fix what the message names, then retry")
    if "ReadWriteMany" in modes and info is not None and info.rwx == "no":
        return d(
            "rwx-unsupported",
            f"it asks for ReadWriteMany but StorageClass {sc} ({info.provisioner}) serves only ReadWriteOnce",
            _provision_fix(ns, name, size),
        )
    if info is not None and info.binding_mode == "WaitForFirstConsumer" and not has_consumer:
        return d(
            "wait-for-consumer",
            f"StorageClass {sc} binds when the first pod using the claim is scheduled; no pod uses it yet",
            "nothing to fix: start the pod (the pipeline's first step) and it binds",
        )
    if "ExternalProvisioning" in reasons and info is not None:
        by_provisioner = {
            "nfs.csi.k8s.io": hints.INSTALL["nfs"],
            classes.FALLBACK_PROVISIONER: hints.INSTALL["fallback"],
        }
        install = by_provisioner.get(info.provisioner, f"install or repair the {info.provisioner} provisioner")
        return d(
            "no-provisioner",
            f"it waits for the external provisioner {info.provisioner}, which has not acted on it "
            "(not installed, or not running)",
            f"{install}; then check its pods (kubectl get pods -A | grep -i provisioner)",
        )
    if sc == "" and not volume:
        return d(
            "no-class",
            'it has storageClassName "" (static binding only) and names no volume',
            f"kubectl delete pvc {name} -n {ns} && sharedvol provision {name} -n {ns} --size {size} --static",
        )
    return d(
        "unknown",
        f"no event explains it yet (events: {', '.join(reasons[-10:]) or 'none'})",
        f"kubectl describe pvc {name} -n {ns}",
    )


def diagnose(api: client.ApiClient, namespace: str | None = None) -> Report:
    """Inspect classes, the strategy a run would get, and every Pending claim (in ``namespace`` or all).

    Raises:
        ForbiddenError: the caller may not list what doctor needs.
    """
    core = client.CoreV1Api(api)
    if namespace is not None:
        _check_namespace(core, namespace)
    infos = classes.inspect(api)
    probe = plan.with_cluster_facts(api, plan.Request(name="sharedvol-probe", namespace=namespace or "default"), infos)
    try:
        p = plan.make(api, probe)
        strategy, reasons = p.strategy, p.reasons
    except errors.StorageError as e:
        strategy, reasons = "none", [str(e)]
    try:
        claims = (
            core.list_namespaced_persistent_volume_claim(namespace)
            if namespace
            else core.list_persistent_volume_claim_for_all_namespaces()
        ).items
        pvs = {pv.metadata.name: pv for pv in core.list_persistent_volume().items}
        pods = (core.list_namespaced_pod(namespace) if namespace else core.list_pod_for_all_namespaces()).items
    except client.ApiException as e:
        raise errors.from_api(e, "list claims, volumes and pods") from e
    users = runs.pods_by_claim(pods)
    used = set(users)
    running_use = runs.claims_used(pods, running_only=True)
    by_name = {c.name: c for c in infos}
    default = next((c.name for c in infos if c.default), None)
    report = Report(infos, strategy, reasons, fallback_running=probe.fallback_running, nfs_health=probe.nfs_health)
    for claim in claims:
        key = (claim.metadata.namespace, claim.metadata.name)
        held = runs.held_by_finished_pods(claim, users[key]) if key in used and key not in running_use else None
        if held is not None:
            report.held.append(held)
            continue
        if claim.status.phase != "Pending":
            left = runs.finished_run_volume(claim, key in running_use)
            if left is not None:
                report.finished_runs.append(left)
            continue
        if claim.spec.storage_class_name is None and default:
            claim.spec.storage_class_name = default
        try:
            selector = f"involvedObject.name={claim.metadata.name},involvedObject.uid={claim.metadata.uid}"
            events = core.list_namespaced_event(claim.metadata.namespace, field_selector=selector).items
        except client.ApiException:
            events = []
        report.pending.append(diagnose_claim(claim, by_name, events, pvs, key in used))
    return report


def _check_namespace(core: client.CoreV1Api, namespace: str) -> None:
    validate.namespace(namespace)
    try:
        core.read_namespace(namespace)
    except client.ApiException as e:
        if e.status == 404:
            raise errors.NotFoundError(
                f"namespace {namespace!r} does not exist", hint="list them: kubectl get namespaces"
            ) from e
        if e.status != 403:  # may read claims in it without reading the namespace itself
            raise errors.from_api(e, f"read namespace {namespace}") from e
