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
from typing import TYPE_CHECKING, Any

import urllib3

from sharedvol import answers
from storage import errors

if TYPE_CHECKING:  # kubernetes is imported lazily: `sharedvol --help` stays fast
    from kubernetes.client import ApiClient, CoreV1Api, V1PersistentVolume, V1PersistentVolumeClaim

log = logging.getLogger(__name__)
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
KUBECONFIG_CAP = 16 * 2**20
TIMEOUT_ENV = "SHAREDVOL_KUBE_TIMEOUT"  # seconds to wait for one answer of the API server
DEFAULT_TIMEOUT_S = 30.0
WATCH_SLACK_S = 30.0  # a watch's read deadline: its own timeoutSeconds plus this
LISTED = "LISTED"  # follow(): the object as a list (or read) found it; None when there is none
QUIET = "QUIET"  # follow(): a watch window ended


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

    _quiet_retries()
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if not explicit and not context and os.path.exists(SERVICE_ACCOUNT_TOKEN):
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return bounded(client.ApiClient(cfg))
    path = os.path.expanduser(explicit or "~/.kube/config")
    if os.path.exists(path) and (not os.path.isfile(path) or os.path.getsize(path) > KUBECONFIG_CAP):
        raise errors.StorageError(  # a FIFO would be waited on, a huge file read whole
            f"kubeconfig {path[:200]!r} is not a regular file of at most {KUBECONFIG_CAP // 2**20} MiB",
            hint="pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, or run inside the cluster",
        )
    try:
        api = config.new_client_from_config(config_file=explicit, context=context)
    except Exception as e:
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise errors.StorageError(
            f"no usable kubeconfig{' ' + repr(explicit) if explicit else ''} ({detail})",
            hint="pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, or run inside the cluster",
        ) from e
    return bounded(api)


def answer_timeout_s() -> float:
    """Seconds to wait for one answer of the API server: ``$SHAREDVOL_KUBE_TIMEOUT``, default 30.

    Raises:
        StorageError: the variable is not a number in (0, 3600].
    """
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 3600:  # also refuses nan
        raise errors.StorageError(
            f"{TIMEOUT_ENV}={raw[:40]!r} is not a number of seconds in (0, 3600]",
            hint=f"unset it (default {DEFAULT_TIMEOUT_S:g}) or set a number such as 60",
        )
    return seconds


def bounded(api: Any) -> Any:
    """``api`` with a client-side deadline on every request that names none.

    A server that accepts the connection and then never answers (or stops half-way) cannot hang a command:
    connecting and each read wait at most :func:`answer_timeout_s`; a watch's reads wait its own
    ``timeoutSeconds`` plus :data:`WATCH_SLACK_S` (the server ends a quiet watch at ``timeoutSeconds``).
    """
    seconds = answer_timeout_s()
    send = api.request

    def request(
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Any:
        if _request_timeout is None:
            watch = dict(query_params or ()).get("timeoutSeconds")
            read = float(watch) + WATCH_SLACK_S if isinstance(watch, int | float) else seconds
            _request_timeout = (seconds, read)
        return send(method, url, query_params, headers, post_params, body, _preload_content, _request_timeout)

    api.request = request
    _capped(api.rest_client.pool_manager)
    return api


class AnswerRefused(urllib3.exceptions.HTTPError):
    """An answer of the API server larger than :data:`sharedvol.answers.KUBE_CAP`, or slower than its deadline."""


def _capped(pool: Any) -> None:
    """Read every answer of ``pool`` but a watch's with the size and time caps of :mod:`sharedvol.answers`."""
    send = pool.request

    def request(method: str, url: str, *args: Any, preload_content: bool = True, **kw: Any) -> Any:
        if not preload_content:  # a watch: read as a stream of events by its caller
            return send(method, url, *args, preload_content=False, **kw)
        r = send(method, url, *args, preload_content=False, **kw)
        try:
            return answers.whole(r, f"{method} {url.split('?')[0]}", cap=answers.KUBE_CAP)
        except answers.TooLarge as e:
            raise AnswerRefused(str(e)) from e

    pool.request = request


def _quiet_urllib3(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _quiet_retries() -> None:
    """Silence urllib3's per-retry warnings: the one error line says it all.

    A filter, not a level, because every kubernetes Configuration (one per model object) sets urllib3's
    level back to WARNING.
    """
    pool = logging.getLogger("urllib3.connectionpool")
    if _quiet_urllib3 not in pool.filters:
        pool.addFilter(_quiet_urllib3)


def server(api: ApiClient | object) -> str:
    """The API server's address, for messages."""
    return str(getattr(getattr(api, "configuration", None), "host", "") or "the API server")


@contextlib.contextmanager
def reachable(action: str, api: Any = None) -> Iterator[None]:
    """Turn transport failures (refused, reset, TLS, timeout) inside the block into one :class:`ApiError` line."""
    try:
        yield
    except AnswerRefused as e:
        raise errors.ApiError(
            f"cannot {action}: {server(api) if api is not None else 'the API server'} answered too much or too "
            f"slowly ({e})",
            hint="check that --kubeconfig / --context name a Kubernetes API server (kubectl cluster-info)",
        ) from e
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


def read_claim(core: CoreV1Api, namespace: str, name: str) -> V1PersistentVolumeClaim | None:
    """The claim ``namespace/name``, or None when there is none."""
    from kubernetes import client

    try:
        return core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise errors.from_api(e, f"read claim {namespace}/{name}") from e


def follow(
    list_fn: Callable[..., Any],
    *args: Any,
    name: str,
    what: str,
    kind: str,
    deadline: float,
    window: float | None = None,
    read: Callable[[], Any] | None = None,
) -> Iterator[tuple[str, Any]]:
    """List object ``name``, then watch it from that resourceVersion until the time.monotonic() ``deadline``.

    The one list-and-watch loop of the waits: the caller decides, the loop only reports. A watch whose
    resourceVersion expired (410 Gone: an HTTP 410, or an ERROR event with code 410, which the Kubernetes
    client raises as the same ``ApiException``) lists again and goes on watching from the new resourceVersion.

    Args:
        list_fn: the list call of the object's kind (``core.list_namespaced_pod``); it is watched by name. A
            custom object's (``CustomObjectsApi.list_namespaced_custom_object``) needs ``read``: its objects are dicts.
        *args: its positional arguments (the namespace; a custom object's group, version, namespace and plural).
        name: the object's name (a ``metadata.name`` field selector).
        what: the object for messages (``claim ns/name``: "cannot watch claim ns/name").
        kind: its kind for messages, plural (``claims``: "cannot list claims").
        deadline: when to stop, in ``time.monotonic()`` seconds.
        window: at most this many seconds per watch request (the caller rechecks between windows); default:
            up to the deadline.
        read: how to read the object instead of listing (it returns the object or None); its own
            resourceVersion then starts the watch.

    Yields:
        (type, object): (``LISTED``, the object or None) after each list or read; (``ADDED``, ``MODIFIED`` or
        ``DELETED``, the object) for each watch event; (``QUIET``, None) when a watch window ended. The caller
        stops by leaving the loop; the iteration ends when the deadline passed.

    Raises:
        StorageError: the mapped error of a list or a watch (403 ForbiddenError, ...), except 410.
    """
    from kubernetes import client, watch

    selector = f"metadata.name={name}"

    def again() -> tuple[Any, str]:
        if read is not None:
            obj = read()
            return obj, resource_version(obj) if obj is not None else ""
        listing = call(list_fn, f"list {kind}", *args, field_selector=selector)
        return (listing.items[0] if listing.items else None), listing.metadata.resource_version

    obj, rv = again()
    yield LISTED, obj
    while (left := deadline - time.monotonic()) > 0:
        seconds = max(1, int(min(window or left, left)))
        stream = watch.Watch().stream(
            list_fn, *args, field_selector=selector, resource_version=rv, timeout_seconds=seconds
        )
        try:
            for event in stream:
                rv = resource_version(event["object"])
                yield event["type"], event["object"]
        except client.ApiException as e:
            if e.status != 410:
                raise errors.from_api(e, f"watch {what}") from e
            log.info("watch %s: resourceVersion %s expired (410 Gone); listing again", what, rv)
            obj, rv = again()
            yield LISTED, obj
        else:
            yield QUIET, None
        finally:
            stream.close()


def resource_version(obj: Any) -> str:
    """``metadata.resourceVersion`` of a model object, or of a custom object (a dict, as CustomObjectsApi gives it)."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
    return str(getattr(getattr(obj, "metadata", None), "resource_version", None) or "")


def wait_gone(
    list_fn: Callable[..., Any], *args: Any, name: str, uid: str, what: str, kind: str, timeout: float
) -> bool:
    """Watch until object ``name`` with UID ``uid`` no longer exists; False when ``timeout`` seconds passed first.

    ``list_fn``, ``args``, ``what`` and ``kind`` are as :func:`follow` takes them.
    """
    deadline = time.monotonic() + timeout
    for seen, obj in follow(list_fn, *args, name=name, what=what, kind=kind, deadline=deadline):
        if (seen == LISTED and (obj is None or obj.metadata.uid != uid)) or (
            seen == "DELETED" and obj.metadata.uid == uid
        ):
            return True
    return False


def watch_volume(core: CoreV1Api, name: str, ok: Callable[[V1PersistentVolume], bool], *, timeout: float) -> bool:
    """List, then watch PersistentVolume ``name`` until ``ok(pv)``; False when ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    what = f"PersistentVolume {name}"
    for _, pv in follow(core.list_persistent_volume, name=name, what=what, kind="PersistentVolumes", deadline=deadline):
        if pv is not None and ok(pv):
            return True
    return False
