"""Nodes as storage sees them: which are Ready (the one filter every command uses), and which fit a step."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client

from storage import errors

GPU_RESOURCE = "nvidia.com/gpu"


def is_ready(node: client.V1Node) -> bool:
    """Whether a node's ``Ready`` condition is ``True``."""
    conditions = (node.status.conditions or []) if node.status is not None else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def closed(node: client.V1Node) -> bool:
    """Whether a node takes no new pods by default: cordoned, or tainted ``NoSchedule``/``NoExecute``.

    A volume pinned there would hold every pod that uses it to that node; placements put such nodes last.
    """
    spec = node.spec
    if spec is None:
        return False
    return bool(spec.unschedulable) or any(t.effect in ("NoSchedule", "NoExecute") for t in spec.taints or [])


def ready(items: list[client.V1Node]) -> list[client.V1Node]:
    """The Ready nodes among ``items``, in their order."""
    return [n for n in items if is_ready(n)]


def list_ready(api: client.ApiClient) -> list[client.V1Node]:
    """The cluster's Ready nodes (with labels and allocatable resources).

    Raises:
        ForbiddenError: not allowed to list nodes.
        StorageError: nodes cannot be listed for another reason.
    """
    try:
        return ready(client.CoreV1Api(api).list_node().items)
    except client.ApiException as e:
        raise errors.from_api(e, "list nodes") from e


def ready_nodes(api: client.ApiClient) -> list[str]:
    """Names of the cluster's Ready nodes: those open to new pods first (see :func:`closed`), each part sorted.

    Raises:
        StorageError: nodes cannot be listed.
    """
    return [n.metadata.name for n in sorted(list_ready(api), key=lambda n: (closed(n), n.metadata.name))]


def gpus(node: client.V1Node) -> int:
    """The node's allocatable ``nvidia.com/gpu`` (0 when none, or not a number)."""
    value = ((node.status.allocatable or {}) if node.status else {}).get(GPU_RESOURCE, "0")
    try:
        return int(value)
    except ValueError:
        return 0


@dataclass
class Fit:
    """The Ready nodes a step can run on.

    Attributes:
        names: their names, sorted (empty when nodes could not be listed).
        lines: what was found, for people.
        notes: what could not be checked.
    """

    names: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fitting(api: client.ApiClient, step: str, selector: dict[str, str], gpu_count: int) -> Fit:
    """Ready nodes matching ``selector`` (``nodeSelector``) and offering ``gpu_count`` GPUs, for ``step``.

    Raises:
        NoNodeError: nodes could be listed and none fits.
    """
    try:
        found = list_ready(api)
    except errors.ForbiddenError:
        return Fit(
            lines=["nodes: not allowed to list them; not checked"],
            notes=[f"could not check that a node fits {step} (no permission to list nodes)"],
        )
    matching = [n for n in found if all((n.metadata.labels or {}).get(k) == v for k, v in selector.items())]
    wanted = " matching " + ",".join(f"{k}={v}" for k, v in selector.items()) if selector else ""
    if not matching:
        listed = ", ".join(n.metadata.name for n in found) or "none"
        raise errors.NoNodeError(
            f"no Ready node{wanted} for {step} (Ready nodes: {listed})",
            hint="fix --node-selector (kubectl get nodes --show-labels), or join a node",
        )
    fits = [n for n in matching if gpus(n) >= gpu_count] if gpu_count > 0 else matching
    if not fits:
        raise errors.NoNodeError(
            f"{step} asks for {gpu_count} {GPU_RESOURCE} and no Ready node{wanted} offers that many",
            hint="install the NVIDIA device plugin (or GPU operator) so the GPU node reports nvidia.com/gpu, "
            "or pass --gpus 0 to train on the CPU",
        )
    names = sorted(n.metadata.name for n in fits)
    what = f" with {gpu_count} {GPU_RESOURCE}" if gpu_count > 0 else ""
    return Fit(names, [f"nodes for {step}{what}{wanted}: {', '.join(names)}"])
