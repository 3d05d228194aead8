"""Compile-time choices and run-time parameter defaults of the pipeline, with the checks that refuse bad ones.

Everything here is pure: no kfp, no Kubernetes client. Each check raises
:class:`~pipelines.errors.BadParameterError` naming the value, the rule and how to fix it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pipelines import errors

DEFAULT_IMAGE = "sharedvol:0.1.0"
DEFAULT_STORAGE_CLASS = "sharedvol-nfs"
GPU_RESOURCE = "nvidia.com/gpu"
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
DEVICES = ("auto", "cpu", "cuda")

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# https://github.com/distribution/reference grammar: [host[:port]/]path[:tag][@digest]
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
_IMAGE = re.compile(
    rf"^(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_QUANTITY = re.compile(
    r"^(?P<number>[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
)
_SUFFIX_FACTOR = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
}
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


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


def quantity_bytes(size: str, *, what: str = "--volume-size") -> Decimal:
    """The number of bytes a Kubernetes quantity (``20Gi``, ``500M``, ``1e9``) stands for.

    Raises:
        BadParameterError: not a quantity, or not positive.
    """
    m = _QUANTITY.match(size.strip()) if size.strip() == size else None
    if not m:
        raise errors.BadParameterError(
            f"{what} {size!r} is not a Kubernetes quantity", hint="use a number with a unit, e.g. 20Gi or 500Mi"
        )
    suffix = m.group("suffix") or ""
    try:
        number = Decimal(m.group("number"))
    except InvalidOperation as e:  # pragma: no cover - the regex admits only decimals
        raise errors.BadParameterError(f"{what} {size!r} is not a number", hint="e.g. 20Gi") from e
    factor = Decimal(10) ** int(suffix[1:]) if suffix[:1] in ("e", "E") else _SUFFIX_FACTOR[suffix]
    value = number * factor
    if value < 1:
        raise errors.BadParameterError(f"{what} {size!r} is not a positive size", hint="e.g. 20Gi")
    return value


def check_dns_subdomain(name: str, *, what: str) -> str:
    """Refuse a name that is not a DNS-1123 subdomain (what StorageClass, PV and PVC names must be)."""
    if not name or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise errors.BadParameterError(
            f"{what} {name!r} is not a valid Kubernetes name",
            hint="use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit "
            "(DNS-1123, at most 253 characters)",
        )
    return name


def check_label_key(key: str, *, what: str) -> str:
    """Refuse a label or taint key that is not ``[prefix/]name`` (prefix a DNS subdomain, name at most 63)."""
    prefix, _, name = key.rpartition("/")
    ok = bool(name) and len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))
    if prefix:
        ok = ok and len(prefix) <= 253 and bool(_DNS1123_SUBDOMAIN.match(prefix))
    if not ok:
        raise errors.BadParameterError(
            f"{what} key {key!r} is not a valid Kubernetes label key", hint="use [prefix/]name, e.g. nvidia.com/gpu"
        )
    return key


def check_label_value(value: str, *, what: str) -> str:
    """Refuse a label or taint value longer than 63 characters or with characters outside ``[-A-Za-z0-9_.]``."""
    if value and (len(value) > 63 or not _QUALIFIED_NAME.match(value)):
        raise errors.BadParameterError(
            f"{what} value {value!r} is not a valid Kubernetes label value",
            hint="at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
    return value


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
        """Refuse names Kubernetes would refuse; return self."""
        if self.strategy == "dynamic":
            if not self.storage_class:
                raise errors.BadParameterError(
                    "--storage-class is empty",
                    hint="name an RWX StorageClass (e.g. sharedvol-nfs), or use --static-pv or --existing-pvc",
                )
            check_dns_subdomain(self.storage_class, what="--storage-class")
        elif self.strategy == "static":
            check_dns_subdomain(self.static_pv, what="--static-pv")
            if self.storage_class:
                check_dns_subdomain(self.storage_class, what="--storage-class")
        elif self.strategy == "existing":
            check_dns_subdomain(self.existing_pvc, what="--existing-pvc")
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


@dataclass(frozen=True)
class RunParameters:
    """The pipeline's run-time parameters and their defaults (settable per run in the KFP UI or by ``submit``).

    Attributes:
        epochs: training epochs. Default 20.
        batch_size: training images per iteration (test uses the same). Default 128.
        lr: SGD learning rate. Default 0.1 (the stock config's).
        data_source: ``download`` (official CIFAR-10, MD5-checked), ``synthetic``, ``synthetic:TRAIN:TEST`` or a
            directory (inside the pod) holding ``cifar-10-batches-py``. Default ``download``.
        volume_size: the claim's ``spec.resources.requests.storage``. Default ``10Gi``.
        gpu_count: ``nvidia.com/gpu`` limit of train-resnet; 0 trains on CPU. Default 1. Sent to KFP as a
            string of digits (the SDK's accelerator-limit rule): KFP's driver reads a parameterized
            accelerator count only as a string and silently drops a number (docs/pipeline.md).
        keep_volume: skip delete-volume. Default False.
        run_dir_name: the run directory's name under ``<volume>/runs/``; empty: the KFP run id. Default empty.
        seed: random seed. Default 0.
        device: ``auto`` (CUDA when visible), ``cpu`` or ``cuda``. Default ``auto``.
        amp: mixed precision on CUDA. Default False.
        num_workers: data-loader worker processes per step. Default 2.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    data_source: str = "download"
    volume_size: str = "10Gi"
    gpu_count: int = 1
    keep_volume: bool = False
    run_dir_name: str = ""
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    num_workers: int = 2

    def validate(self) -> RunParameters:
        """Refuse values that cannot work, naming the parameter; return self."""
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise errors.BadParameterError(f"{name} must be at least 1, got {getattr(self, name)}", hint="e.g. 2")
        if not self.lr > 0:
            raise errors.BadParameterError(f"lr must be positive, got {self.lr}", hint="e.g. 0.1")
        if self.gpu_count < 0:
            raise errors.BadParameterError(
                f"gpu_count must be 0 or more, got {self.gpu_count}", hint="0 trains on CPU, 1 asks for one GPU"
            )
        if self.num_workers < 0:
            raise errors.BadParameterError(f"num_workers must be 0 or more, got {self.num_workers}", hint="e.g. 2")
        if self.device not in DEVICES:
            raise errors.BadParameterError(f"device {self.device!r} is unknown", hint="use auto, cpu or cuda")
        if not self.data_source.strip():
            raise errors.BadParameterError("data_source is empty", hint="use download, synthetic or a directory")
        quantity_bytes(self.volume_size, what="volume_size")
        check_run_name(self.run_dir_name)
        return self

    def replace(self, **changes: Any) -> RunParameters:
        """A copy with ``changes`` applied (unknown names are an error)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise errors.BadParameterError(
                f"unknown pipeline parameter(s) {', '.join(sorted(unknown))}",
                hint=f"known: {', '.join(f.name for f in dataclasses.fields(self))}",
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The parameters as KFP ``runtime_config.parameters`` (``gpu_count`` as a string of digits)."""
        params = dataclasses.asdict(self)
        params["gpu_count"] = gpu_count_parameter(self.gpu_count)
        return params


_ACCELERATOR_LIMIT = re.compile(r"^\d+$")  # kfp.dsl.PipelineTask.set_accelerator_limit's rule


def gpu_count_parameter(count: int | str) -> str:
    """The pipeline's ``gpu_count`` parameter value: a non-negative integer as a string of digits.

    Raises:
        BadParameterError: not a non-negative integer (the SDK's rule for accelerator limits).
    """
    text = str(count).strip()
    if isinstance(count, bool) or not _ACCELERATOR_LIMIT.match(text):
        raise errors.BadParameterError(
            f"gpu_count {count!r} is not a non-negative integer", hint="0 trains on CPU, 1 asks for one GPU"
        )
    return str(int(text))


def check_run_name(name: str) -> str:
    """Refuse a run name that is not one safe path component (empty is allowed: the KFP run id is used)."""
    if name and not _RUN_NAME.match(name):
        raise errors.BadParameterError(
            f"run name {name!r} cannot name a directory",
            hint="use at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class CompileOptions:
    """Everything fixed when the pipeline YAML is written.

    Attributes:
        image: the step image every Python component runs in (``base_image``). Default ``sharedvol:0.1.0``.
        storage: where the shared volume comes from.
        node_selector: ``Pod.spec.nodeSelector`` of train-resnet. Default none.
        tolerations: ``Pod.spec.tolerations`` of train-resnet. Default: tolerate ``nvidia.com/gpu`` (NoSchedule).
        train_retries: how often KFP retries a failed train-resnet (it resumes from the last checkpoint). Default 2.
        defaults: the run-time parameters' defaults written into the YAML.
        mount_path: where every step mounts the claim. Default ``/mnt/shared``.
        workspace: use KFP's own per-run workspace (KFP >= 2.15) instead of create-volume/delete-volume: a
            ReadWriteMany claim of ``storage.storage_class`` that KFP makes and mounts at ``/kfp-workspace``.
            Only with the ``dynamic`` strategy. Default False.
    """

    image: str = DEFAULT_IMAGE
    storage: StorageChoice = field(default_factory=StorageChoice)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = (Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"),)
    train_retries: int = 2
    defaults: RunParameters = field(default_factory=RunParameters)
    mount_path: str = "/mnt/shared"
    workspace: bool = False

    def validate(self) -> CompileOptions:
        """Check every choice; return self."""
        check_image(self.image)
        self.storage.validate()
        if self.workspace and self.storage.strategy != "dynamic":
            raise errors.BadParameterError(
                f"--workspace cannot use {self.storage.describe()}",
                hint="KFP's workspace is a new claim of a StorageClass per run: drop --existing-pvc/--static-pv",
            )
        for key, value in self.node_selector.items():
            check_label_key(key, what="--node-selector")
            check_label_value(value, what="--node-selector")
        for tol in self.tolerations:
            tol.validate()
        if self.train_retries < 0:
            raise errors.BadParameterError(f"train retries must be 0 or more, got {self.train_retries}", hint="e.g. 2")
        if not self.mount_path.startswith("/"):
            raise errors.BadParameterError(f"mount path {self.mount_path!r} is not absolute", hint="e.g. /mnt/shared")
        self.defaults.validate()
        return self
