"""Cluster access in one place: kubeconfig or in-cluster, retried calls, transport failures as one line.

The in-cluster service account or a kubeconfig and context; API calls with a finite logged backoff;
transport failures (no server, a dropped connection) mapped to one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from storage import errors

log = logging.getLogger(__name__)
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``.

    Args:
        kubeconfig: a kubeconfig file; default: ``$KUBECONFIG``, else the in-cluster service account when
            running in a pod, else ``~/.kube/config``.
        context: the kubeconfig context to use; default: its current context.

    Raises:
        StorageError: no usable configuration was found (missing, unreadable, not YAML, incomplete).
    """
    from kubernetes import client, config

    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if not explicit and not context and os.path.exists(SERVICE_ACCOUNT_TOKEN):
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return client.ApiClient(cfg)
    try:
        return config.new_client_from_config(config_file=explicit, context=context)
    except Exception as e:
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise errors.StorageError(
            f"no usable kubeconfig{' ' + repr(explicit) if explicit else ''} ({detail})",
            hint="pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, or run inside the cluster",
        ) from e


def server(api: Any) -> str:
    """The API server's address, for messages."""
    return str(getattr(getattr(api, "configuration", None), "host", "") or "the API server")


@contextlib.contextmanager
def reachable(action: str, api: Any = None) -> Iterator[None]:
    """Turn transport failures (refused, reset, TLS, timeout) inside the block into one :class:`ApiError` line."""
    import urllib3

    try:
        yield
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
        where = server(api) if api is not None else "the API server"
        detail = str(getattr(e, "reason", None) or e).splitlines()[0][:200]
        raise errors.ApiError(
            f"cannot {action}: no answer from {where} ({type(e).__name__}: {detail})",
            hint="check that the cluster is up and that --kubeconfig / --context name it (kubectl cluster-info)",
        ) from e


def call(fn: Callable[..., Any], action: str, *args: Any, **kwargs: Any) -> Any:
    """Call the API; retry 429 and 5xx along a finite backoff, logging each attempt; map errors.

    Raises:
        StorageError: the mapped error of the last attempt (403 ForbiddenError, 404 NotFoundError, ...).
    """
    from kubernetes import client

    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return fn(*args, **kwargs)
        except client.ApiException as e:
            retriable = e.status == 429 or (e.status or 0) >= 500
            if not retriable or delay is None:
                raise errors.from_api(e, action) from e
            log.warning("%s: attempt %d failed (HTTP %s); will retry in %.1f s", action, attempt, e.status, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def read_claim(core: Any, namespace: str, name: str) -> Any:
    """The claim ``namespace/name``, or None when there is none."""
    from kubernetes import client

    try:
        return core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise errors.from_api(e, f"read claim {namespace}/{name}") from e


def watch_volume(core: Any, name: str, ok: Callable[[Any], bool], *, timeout: float) -> bool:
    """List, then watch PersistentVolume ``name`` until ``ok(pv)``; False when ``timeout`` seconds passed first."""
    from kubernetes import watch

    selector = f"metadata.name={name}"
    listing = call(core.list_persistent_volume, "list PersistentVolumes", field_selector=selector)
    if any(ok(pv) for pv in listing.items):
        return True
    w = watch.Watch()
    for event in w.stream(
        core.list_persistent_volume,
        field_selector=selector,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=max(1, int(timeout)),
    ):
        if ok(event["object"]):
            w.stop()
            return True
    return False
