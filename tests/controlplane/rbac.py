"""A test acting as a user with only some rights: a ServiceAccount bound to a ClusterRole of given rules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client

from rig import cluster as cp


@contextlib.contextmanager
def acting_as(
    cluster: cp.ClusterHandle,
    api: Any,
    namespace: str,
    name: str,
    rules: list[dict[str, Any]],
    account: str = "engineer",
) -> Iterator[Path]:
    """The kubeconfig of ServiceAccount ``namespace/account`` with ``rules`` (ClusterRole and binding ``name``).

    The role and its binding are deleted when the block ends, whatever happened in it.
    """
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
    try:
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        )
        yield cluster.service_account_kubeconfig(namespace, account)
    finally:
        with contextlib.suppress(client.ApiException):  # not there when creating it failed
            rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
