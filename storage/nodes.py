"""Nodes as storage sees them: which are Ready (the one filter every command uses)."""

from __future__ import annotations

from typing import Any

from storage import errors


def is_ready(node: Any) -> bool:
    """Whether a V1Node's ``Ready`` condition is ``True``."""
    conditions = (node.status.conditions or []) if node.status is not None else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def ready(items: list[Any]) -> list[Any]:
    """The Ready nodes among ``items`` (V1Node objects), in their order."""
    return [n for n in items if is_ready(n)]


def list_ready(api: Any) -> list[Any]:
    """The cluster's Ready nodes (V1Node objects, with labels and allocatable resources).

    Raises:
        ForbiddenError: not allowed to list nodes.
        StorageError: nodes cannot be listed for another reason.
    """
    from kubernetes import client

    try:
        return ready(client.CoreV1Api(api).list_node().items)
    except client.ApiException as e:
        raise errors.from_api(e, "list nodes") from e


def ready_nodes(api: Any) -> list[str]:
    """Names of the cluster's Ready nodes, sorted.

    Raises:
        StorageError: nodes cannot be listed.
    """
    return sorted(n.metadata.name for n in list_ready(api))
