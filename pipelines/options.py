"""Compile-time choices of the pipeline (image, volume, scheduling), with the checks that refuse bad ones.

Everything here is pure: no kfp, no Kubernetes client. Each check raises
:class:`~pipelines.errors.BadParameterError` naming the value, the rule and how to fix it; Kubernetes names
are checked by :mod:`storage.validate`. The run-time parameters are :mod:`pipelines.params`'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pipelines import errors, params
from sharedvol import version
from storage import classes as storage_classes
from storage import validate as storage_validate

DEFAULT_IMAGE = version.STEP_IMAGE
DEFAULT_STORAGE_CLASS = storage_classes.NFS_CLASS
GPU_RESOURCE = "nvidia.com/gpu"
MAX_WORKERS = 1024  # TrainJob nodes
MAX_RETRIES = 100  # KFP keeps max_retry_count in an int32
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# https://github.com/distribution/reference grammar: [host[:port]/]path[:tag][@digest]
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
_IMAGE = re.compile(
    rf"^(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def check_image(image: str) -> str:
    """Refuse an empty or malformed container image reference (``[registry/]repo[:tag][@digest]``).

    Whether the image exists is only known when a node pulls it; a run whose image cannot be pulled fails
    and ``sharedvol submit`` names the task and the reason.
    """
    if not image.strip():
        raise errors.BadParameterError(
            "--image is empty", hint="name the step image, e.g. --image ghcr.io/me/sharedvol:0.1.0"
        )
    if not _IMAGE.match(image):
        raise errors.BadParameterError(
            f"--image {image!r} is not a container image reference",
            hint="use [registry/]repository[:tag][@sha256:digest] with a lowercase repository, e.g. sharedvol:0.1.0",
        )
    return image


def check_label_key(key: str, *, what: str) -> str:
    """Refuse a label or taint key that is not ``[prefix/]name`` (prefix a DNS subdomain, name at most 63)."""
    prefix, _, name = key.rpartition("/")
    ok = bool(name) and len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))
    if prefix:
        ok = ok and len(prefix) <= 253 and bool(storage_validate.DNS1123_SUBDOMAIN.match(prefix))
    if not ok:
        raise errors.BadParameterError(
            f"{what} key {key!r} is not a valid Kubernetes label key", hint="use [prefix/]name, e.g. nvidia.com/gpu"
        )
    return key


def check_label_value(value: str, *, what: str) -> str:
    """Refuse a label or taint value longer than 63 characters or with characters outside ``[-A-Za-z0-9_.]``."""
    if not value or (len(value) <= 63 and _QUALIFIED_NAME.match(value)):
        return value
    raise errors.BadParameterError(
        f"{what} value {value!r} is not a valid Kubernetes label value",
        hint="at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    )


@dataclass(frozen=True)
class StorageChoice:
    """Where the run's shared volume comes from; chosen at compile time (by flags or by the storage plan).

    Attributes:
        strategy: ``dynamic`` (create-volume asks ``storage_class`` for a new ReadWriteMany claim),
            ``static`` (create-volume makes a claim pre-bound to the PersistentVolume ``static_pv``) or
            ``existing`` (no create or delete: every step mounts the claim ``existing_pvc``).
        storage_class: ``PersistentVolumeClaim.spec.storageClassName`` of the created claim. Always passed
            explicitly: ``""`` means no class (static binding only). Default ``sharedvol-nfs``.
        static_pv: ``PersistentVolumeClaim.spec.volumeName`` for the ``static`` strategy.
        existing_pvc: the claim name for the ``existing`` strategy.
    """

    strategy: Literal["dynamic", "static", "existing"] = "dynamic"
    storage_class: str = DEFAULT_STORAGE_CLASS
    static_pv: str = ""
    existing_pvc: str = ""

    @classmethod
    def dynamic(cls, storage_class: str = DEFAULT_STORAGE_CLASS) -> StorageChoice:
        """A new claim of ``storage_class`` per run."""
        return cls("dynamic", storage_class=storage_class)

    @classmethod
    def static(cls, pv: str, storage_class: str = "") -> StorageChoice:
        """A new claim per run, pre-bound to the existing PersistentVolume ``pv`` (class ``""`` unless given)."""
        return cls("static", storage_class=storage_class, static_pv=pv)

    @classmethod
    def existing(cls, pvc: str) -> StorageChoice:
        """An existing claim, only mounted."""
        return cls("existing", storage_class="", existing_pvc=pvc)

    def validate(self) -> StorageChoice:
        """Refuse names Kubernetes would refuse (:func:`storage.validate.name`); return self.

        Raises:
            BadParameterError: an empty class for a new claim, or an unknown strategy.
            InvalidRequestError: a class, PV or claim name that is not DNS-1123.
        """
        if self.strategy == "dynamic":
            if not self.storage_class:
                raise errors.BadParameterError(
                    "the StorageClass of a new claim is empty",
                    hint="name an RWX StorageClass (e.g. --storage nfs), or use --storage pvc:NAME or static:PV",
                )
            storage_validate.name(self.storage_class, "StorageClass")
        elif self.strategy == "static":
            storage_validate.name(self.static_pv, "PersistentVolume")
            if self.storage_class:
                storage_validate.name(self.storage_class, "StorageClass")
        elif self.strategy == "existing":
            storage_validate.name(self.existing_pvc, "claim")
        else:
            raise errors.BadParameterError(
                f"unknown storage strategy {self.strategy!r}", hint="use dynamic, static or existing"
            )
        return self

    def describe(self) -> str:
        """One line saying what the pipeline will do for its volume."""
        if self.strategy == "dynamic":
            return f"a new ReadWriteMany claim of StorageClass {self.storage_class!r} per run"
        if self.strategy == "static":
            return (
                f"a new claim per run pre-bound to PersistentVolume {self.static_pv!r} (class {self.storage_class!r})"
            )
        return f"the existing claim {self.existing_pvc!r}"


@dataclass(frozen=True)
class Toleration:
    """One toleration of train-resnet's pod (``Pod.spec.tolerations[]``).

    Attributes:
        key: the taint key (``nvidia.com/gpu``).
        operator: ``Exists`` (any value) or ``Equal`` (``value`` must match).
        value: the taint value for ``Equal``.
        effect: ``NoSchedule``, ``PreferNoSchedule``, ``NoExecute``, or ``""`` for all effects.
    """

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str = ""
    effect: str = "NoSchedule"

    @classmethod
    def parse(cls, text: str) -> Toleration:
        """``KEY[=VALUE][:EFFECT]``: ``nvidia.com/gpu:NoSchedule`` (Exists), ``dedicated=ml:NoExecute`` (Equal)."""
        body, sep, effect = text.rpartition(":")
        if not sep:
            body, effect = text, ""
        key, eq, value = body.partition("=")
        tol = cls(key=key, operator="Equal" if eq else "Exists", value=value, effect=effect)
        return tol.validate()

    def fields(self) -> dict[str, str]:
        """The toleration as ``Pod.spec.tolerations[]`` holds it, without its empty fields."""
        given = {"key": self.key, "operator": self.operator, "value": self.value, "effect": self.effect}
        return {k: v for k, v in given.items() if v}

    def validate(self) -> Toleration:
        """Refuse a bad key, value, operator or effect; return self."""
        check_label_key(self.key, what="--toleration")
        check_label_value(self.value, what="--toleration")
        if self.operator not in ("Exists", "Equal"):
            raise errors.BadParameterError(f"--toleration operator {self.operator!r}", hint="use Exists or Equal")
        if self.effect and self.effect not in TOLERATION_EFFECTS:
            raise errors.BadParameterError(
                f"--toleration effect {self.effect!r} is unknown", hint=f"use one of {', '.join(TOLERATION_EFFECTS)}"
            )
        return self


def parse_node_selector(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings into a node selector (``Pod.spec.nodeSelector``)."""
    selector: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise errors.BadParameterError(
                f"--node-selector {item!r} is not KEY=VALUE", hint="e.g. --node-selector nvidia.com/gpu.present=true"
            )
        selector[check_label_key(key, what="--node-selector")] = check_label_value(value, what="--node-selector")
    return selector


DEFAULT_TTL_S = 600  # a succeeded run's pods (and its deleted volume) go 10 minutes after it ends
MIN_TTL_S = 30  # KFP's persistence agent must read the run's end from the Workflow before it goes
MAX_TTL_S = 30 * 24 * 3600  # Argo's TTL is an int32 of seconds; a month is more than any run needs kept


@dataclass(frozen=True)
class CompileOptions:
    """Everything fixed when the pipeline YAML is written.

    Attributes:
        image: the step image every Python component runs in (``base_image``). Default ``sharedvol:<version>``
            (sharedvol/version.py).
        storage: where the shared volume comes from.
        node_selector: ``Pod.spec.nodeSelector`` of train-resnet. Default none.
        tolerations: ``Pod.spec.tolerations`` of train-resnet. Default: tolerate ``nvidia.com/gpu`` (NoSchedule).
        train_retries: how often KFP retries a failed train-resnet (it resumes from the last checkpoint). Default 2.
        defaults: the run-time parameters' defaults written into the YAML.
        mount_path: where every step mounts the claim. Default ``/mnt/shared``.
        workspace: use KFP's own per-run workspace (KFP >= 2.15) instead of create-volume/delete-volume: a
            ReadWriteMany claim of ``storage.storage_class`` that KFP makes and mounts at ``/kfp-workspace``.
            Only with the ``dynamic`` strategy. Default False.
        workers: train-resnet's nodes. 1 trains in the step's own pod (``gpu_count`` GPUs, the node selector and
            tolerations above); 2 or more run it as a Kubeflow Trainer v2.0.0 TrainJob of that many pods
            (``spec.trainer.numNodes``), each with ``gpu_count`` GPUs, the node selector and tolerations, created
            and followed by the train step (docs/scaling-out.md). Not with ``workspace``. Default 1.
        ttl_after_success_s: seconds a succeeded run's Argo Workflow, and so its pods, stay before Argo deletes
            them (``PipelineConfig.ttl_seconds_after_success``: the Workflow's
            ``spec.ttlStrategy.secondsAfterSuccess``). The run's deleted claim is held by those pods until then
            (the pvc-protection finalizer), so this is when its space is freed; the run, its metrics and its steps'
            logs (published by KFP's launcher) stay in the KFP UI. 0: not set, the cluster's own TTL applies (KFP's
            manifests: one hour; without one, days). Failed runs keep their pods for debugging either way.
            Default 600; else :data:`MIN_TTL_S` (KFP's persistence agent records the run's end from the Workflow:
            gone sooner, the run could stay Running in KFP) to :data:`MAX_TTL_S`.
    """

    image: str = DEFAULT_IMAGE
    storage: StorageChoice = field(default_factory=StorageChoice)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = (Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"),)
    train_retries: int = 2
    defaults: params.RunParameters = field(default_factory=params.RunParameters)
    mount_path: str = "/mnt/shared"
    workspace: bool = False
    workers: int = 1
    ttl_after_success_s: int = DEFAULT_TTL_S

    @property
    def trainjob(self) -> bool:
        """Whether train-resnet runs as a TrainJob (``workers`` 2 or more)."""
        return self.workers > 1

    def validate(self) -> CompileOptions:
        """Check every choice; return self."""
        check_image(self.image)
        self.storage.validate()
        if self.workspace and self.storage.strategy != "dynamic":
            raise errors.BadParameterError(
                f"--workspace cannot use {self.storage.describe()}",
                hint="KFP's workspace is a new claim of a StorageClass per run: drop --existing-pvc/--static-pv",
            )
        if not 1 <= self.workers <= MAX_WORKERS:
            raise errors.BadParameterError(
                f"--workers must be between 1 and {MAX_WORKERS}, got {self.workers}",
                hint="1 trains in the train step's own pod; 2 or more run a TrainJob of that many nodes",
            )
        if self.trainjob and self.workspace:
            raise errors.BadParameterError(
                f"--workers {self.workers} cannot use KFP's workspace",
                hint="the TrainJob mounts the run's claim by name, which KFP keeps to itself for its workspace: "
                "drop --workspace",
            )
        for key, value in self.node_selector.items():
            check_label_key(key, what="--node-selector")
            check_label_value(value, what="--node-selector")
        for tol in self.tolerations:
            tol.validate()
        if self.ttl_after_success_s != 0 and not MIN_TTL_S <= self.ttl_after_success_s <= MAX_TTL_S:
            raise errors.BadParameterError(
                f"--ttl-after-success must be 0 or {MIN_TTL_S} to {MAX_TTL_S} seconds, got {self.ttl_after_success_s}",
                hint="e.g. 600 (10 minutes; sooner, KFP may not record the run's end); 0 leaves it to the cluster",
            )
        if not 0 <= self.train_retries <= MAX_RETRIES:
            raise errors.BadParameterError(
                f"train retries must be between 0 and {MAX_RETRIES}, got {self.train_retries}", hint="e.g. 2"
            )
        if not self.mount_path.startswith("/"):
            raise errors.BadParameterError(f"mount path {self.mount_path!r} is not absolute", hint="e.g. /mnt/shared")
        self.defaults.validate()
        return self
