"""Cluster access, in one place: the in-cluster service account or a kubeconfig and context."""

from __future__ import annotations

import os
from typing import Any

from storage import errors

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``.

    Args:
        kubeconfig: a kubeconfig file; default: ``$KUBECONFIG``, else the in-cluster service account when
            running in a pod, else ``~/.kube/config``.
        context: the kubeconfig context to use; default: its current context.

    Raises:
        StorageError: no usable configuration was found.
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if not explicit and not context and os.path.exists(SERVICE_ACCOUNT_TOKEN):
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return client.ApiClient(cfg)
    try:
        return config.new_client_from_config(config_file=explicit, context=context)
    except (ConfigException, FileNotFoundError, OSError) as e:
        raise errors.StorageError(
            f"no usable kubeconfig ({e})",
            hint="pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, or run inside the cluster",
        ) from e
