"""The KFP API through ``kfp.Client``, with what it lacks for ``sharedvol submit``: one-line errors, one retry policy.

``kfp.Client`` (kfp 2.17) does the authentication, the host handling, the models, the multipart upload and the
calls themselves. Added here:

- a request timeout (the client waits forever on a host that accepts and never answers);
- one health check without retries (``kfp.Client`` retries it five times, 5 s apart, even on a refused token);
- errors as one line each: 401/403 (:class:`~pipelines.errors.KfpAuthError`), an unreachable host
  (:class:`~pipelines.errors.KfpUnreachableError`), other refusals (:class:`~pipelines.errors.KfpApiError`);
- the only retry loop: reads are retried on an unreachable host, 429 and 5xx along a finite, logged backoff;
  writes and other 4xx are never retried (a repeated create-run would start a second run);
- the links ``kfp.Client`` prints to stdout go to the debug log instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kfp
import kfp_server_api
import requests
import urllib3
from kubernetes import client as kube_client

from pipelines import errors
from sharedvol import answers
from steps import errors as steps_errors
from steps import volread

log = logging.getLogger(__name__)

IN_CLUSTER_TOKEN_PATHS = ("/var/run/secrets/kubeflow/pipelines/token",)
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
PORT_FORWARD_HINT = (
    "check --host; from outside the cluster: kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 "
    "and --host http://localhost:8080"
)
T = TypeVar("T")

TOKEN_CAP = 64 * 2**10
_TOKEN = re.compile(r"\A[\x21-\x7e]{1,65536}\Z")
_CLIENT_LOOKUPS = ("No experiment", "Multiple experiments")  # kfp.Client.get_experiment's ValueErrors
ANSWER_DEADLINE_S = 120.0  # one answer of the KFP API, from its first byte to its last


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the KFP API.

    Attributes:
        host: the KFP endpoint, e.g. ``http://localhost:8080`` (port-forwarded UI),
            ``http://ml-pipeline.kubeflow.svc.cluster.local:8888`` (in-cluster API), or a Kubeflow gateway URL
            ending in ``/pipeline``.
        token: a bearer token (``kfp.Client(existing_token=...)``); None sends none.
        namespace: the Kubernetes namespace of pipelines, experiments and runs (multi-user Kubeflow); None for
            single-user deployments.
        request_timeout_s: seconds to wait for one HTTP response. Default 30.
        read_backoff_s: the waits in seconds between retries of a read (unreachable, 429, 5xx); its length is the
            number of retries. Default (1, 2, 4, 8).
        verify_tls: verify the server's certificate; a path is a CA bundle to verify it with. Default True.
    """

    host: str
    token: str | None = None
    namespace: str | None = None
    request_timeout_s: float = 30.0
    read_backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    verify_tls: bool | str = True

    def validate(self) -> ApiSettings:
        """Refuse a host that is not an http(s) URL, or a token that cannot be one; return self."""
        if self.token is not None:
            check_token(self.token)
        if not self.host.startswith(("http://", "https://")) or len(self.host.split("://", 1)[1].strip("/")) == 0:
            raise errors.BadParameterError(
                f"--host {self.host!r} is not an http(s) URL", hint="e.g. --host http://localhost:8080"
            )
        return self

    @property
    def base(self) -> str:
        """The host without a trailing slash."""
        return self.host.rstrip("/")


def read_token_file(paths: tuple[str, ...] = IN_CLUSTER_TOKEN_PATHS, env: dict[str, str] | None = None) -> str | None:
    """The in-cluster KFP service-account token, when a pod has one mounted (``KF_PIPELINES_SA_TOKEN_PATH`` first)."""
    env = dict(os.environ) if env is None else env
    candidates = ((env[TOKEN_PATH_ENV],) if env.get(TOKEN_PATH_ENV) else ()) + paths
    for path in candidates:
        if not os.path.lexists(path):
            continue
        try:  # a regular file of at most 64 KiB, read without waiting (a FIFO there is refused, not waited on)
            token = volread.read(path, cap=TOKEN_CAP, hint="mount the service-account token there").decode().strip()
        except steps_errors.StepError as e:
            raise errors.BadParameterError(f"token file {path}: {e.message}", hint=e.hint) from e
        except UnicodeDecodeError as e:
            raise errors.BadParameterError(
                f"token file {path} is not text", hint="mount the service-account token there"
            ) from e
        if token:
            return check_token(token, f"token file {path}")
    return None


def check_token(token: str, what: str = "--token") -> str:
    """``token`` when it can be a bearer token: printable ASCII without spaces.

    Raises:
        BadParameterError: it holds anything else (a newline, a space, non-ASCII).
    """
    if not _TOKEN.match(token):
        raise errors.BadParameterError(
            f"{what} is not a bearer token (printable ASCII without spaces, at most {TOKEN_CAP} characters)",
            hint='pass the token itself, e.g. --token "$(kubectl create token default -n kubeflow)"',
        )
    return token


class KfpApi:
    """A ``kfp.Client`` for ``settings``, made on first use, and the error and retry policy around its calls.

    Args:
        settings: where the API is and how to authenticate.
        sleep: how to wait between read retries (tests pass a no-op).
    """

    def __init__(self, settings: ApiSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings.validate()
        self._sleep = sleep
        self._client: kfp.Client | None = None
        # a Kubernetes client, where the caller has one: task logs straight from the pods
        self.kube: kube_client.ApiClient | None = None

    @property
    def client(self) -> kfp.Client:
        """The ``kfp.Client`` (made, and the API's health checked once, on first use)."""
        if self._client is None:
            self._client = self._call("GET /healthz", _connect, self.settings)
        return self._client

    def probe(self) -> None:
        """Fail fast, without retries, on a wrong host or a refused token (one ``GET /healthz``)."""
        self.write("GET /healthz", lambda c: c.get_kfp_healthz())

    def read(self, what: str, call: Callable[[kfp.Client], T]) -> T:
        """``call(client)``, retried along ``read_backoff_s`` on an unreachable host, 429 and 5xx (each logged).

        Args:
            what: the request, for messages (``GET /runs/ID``).
            call: the read.
        """
        waits = self.settings.read_backoff_s
        for attempt, wait in enumerate((*waits, None), start=1):
            try:
                return self._call(what, call, self.client)
            except errors.KfpApiError as e:
                status = getattr(e.__cause__, "status", None)
                retryable = isinstance(e, errors.KfpUnreachableError) or status == 429 or (status or 0) >= 500
                if not retryable or wait is None:
                    raise
                log.warning("%s: attempt %d failed (%s); will retry in %gs", what, attempt, e.message, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def find(self, what: str, call: Callable[[kfp.Client], T]) -> T | None:
        """As :meth:`read`, but None when the API answers 404."""
        try:
            return self.read(what, call)
        except errors.KfpApiError as e:
            if getattr(e.__cause__, "status", None) == 404:
                return None
            raise

    def write(self, what: str, call: Callable[[kfp.Client], T]) -> T:
        """``call(client)`` once: a write is never repeated."""
        return self._call(what, call, self.client)

    def pod_log(self, pod_name: str) -> str | None:
        """A task pod's log through the KFP UI server (``GET /k8s/pod/logs``), or None when it is not offered.

        ``kfp.Client`` has no such call: only the UI server (and a Kubeflow gateway in front of it) serves this
        path, not the bare API server. The pod's namespace is ``namespace``, else ``kubeflow``.
        """
        s = self.settings
        try:
            with requests.get(
                f"{s.base}/k8s/pod/logs",
                params={"podname": pod_name, "podnamespace": s.namespace or "kubeflow"},
                headers={"Authorization": f"Bearer {s.token}"} if s.token else {},
                timeout=s.request_timeout_s,
                verify=s.verify_tls,
                stream=True,
            ) as r:
                if r.status_code != 200:
                    log.debug("pod log of %s not available: HTTP %s", pod_name, r.status_code)
                    return None
                text = answers.read(answers.arriving(r.raw), f"the log of {pod_name}", deadline_s=ANSWER_DEADLINE_S)
        except (requests.RequestException, answers.TooLarge) as e:
            log.debug("pod log of %s not available: %s", pod_name, e)
            return None
        return text.decode("utf-8", "replace")

    def _call(self, what: str, call: Callable[[kfp.Client], T], arg: kfp.Client) -> T:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                return call(arg)
        except kfp_server_api.ApiException as e:
            if e.status == 0 and str(e.reason).startswith("SSLError"):  # kfp_server_api's TLS failure
                raise self._unreachable(str(e.reason).splitlines()[0]) from e
            if e.status == 0:  # the client's models refused a field (a date that is not one)
                raise self._not_kfp(what, "ApiException", str(e.reason)) from e
            raise self._refused(what, e) from e
        except urllib3.exceptions.HTTPError as e:
            if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
                e = e.reason  # type: ignore[assignment]
            timed_out = isinstance(e, urllib3.exceptions.TimeoutError)
            if timed_out and not isinstance(e, urllib3.exceptions.NewConnectionError):
                raise errors.KfpUnreachableError(
                    f"the KFP API at {self.settings.base} did not answer within {self.settings.request_timeout_s:g} s",
                    hint=PORT_FORWARD_HINT,
                ) from e
            raise self._unreachable(type(e).__name__) from e
        # the client's models refused the answer (a field of the wrong type, text that is not UTF-8, ...)
        except (TypeError, AttributeError, KeyError, RecursionError, ValueError) as e:
            if type(e) is ValueError and str(e).startswith(_CLIENT_LOOKUPS):
                raise  # kfp.Client's own word for an experiment it did not find: the caller's to read
            raise self._not_kfp(what, type(e).__name__, str(e)) from e
        finally:
            for line in printed.getvalue().splitlines():
                log.debug("kfp: %s", line)

    def _not_kfp(self, what: str, kind: str, detail: str) -> errors.KfpApiError:
        return errors.KfpApiError(
            f"the KFP API at {self.settings.base} answered {what} with something that is not a KFP answer "
            f"({kind}: {detail[:200]})",
            hint="check that --host names a KFP API server (2.x) and not another service",
        )

    def _unreachable(self, reason: str) -> errors.KfpUnreachableError:
        return errors.KfpUnreachableError(
            f"cannot reach the KFP API at {self.settings.base} ({reason})", hint=PORT_FORWARD_HINT
        )

    def _refused(self, what: str, e: kfp_server_api.ApiException) -> errors.KfpApiError:
        said = _server_message(e.body)
        if e.status in (401, 403):
            ns = f" in namespace {self.settings.namespace!r}" if self.settings.namespace else ""
            hint = (
                "pass a valid --token (e.g. the output of kubectl create token), or run in a pod that has the KFP "
                "service-account token"
                if e.status == 401
                else f"the identity behind the token may not use KFP{ns}; ask for access or pass --namespace"
            )
            reason = "401 Unauthorized" if e.status == 401 else "403 Forbidden"
            return errors.KfpAuthError(f"the KFP API refused {what}: {reason}{said}", hint=hint)
        return errors.KfpApiError(
            f"{what} failed: HTTP {e.status}{said}",
            hint="check the KFP API server's version (v2beta1 is needed) and its logs",
        )


def _connect(settings: ApiSettings) -> kfp.Client:
    """A ``kfp.Client`` whose requests time out, with no retries of its own, that checks the API's health once."""
    timeout = (settings.request_timeout_s, settings.request_timeout_s)

    class Client(kfp.Client):
        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            """One health check, no retries (``kfp.Client`` retries even a refused token five times, 5 s apart)."""
            _tune(self._healthz_api.api_client.rest_client, timeout)
            return self._healthz_api.healthz_service_get_healthz()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later": it is
        client = Client(
            host=settings.base,
            existing_token=settings.token,
            namespace=settings.namespace or "kubeflow",
            verify_ssl=bool(settings.verify_tls),
            ssl_ca_cert=settings.verify_tls if isinstance(settings.verify_tls, str) else None,
        )
    _tune(client._run_api.api_client.rest_client, timeout)
    return client


def _tune(rest: kfp_server_api.rest.RESTClientObject, timeout: tuple[float, float]) -> None:
    """Give every request of the REST client all of ``kfp.Client``'s services share a timeout and no retries.

    urllib3 retries three times by default, even after a read timeout: :meth:`KfpApi.read` is the one retry loop.
    """
    if getattr(rest, "sharedvol_tuned", False):
        return
    rest.pool_manager.connection_pool_kw["retries"] = 0
    _cap(rest.pool_manager)
    send = rest.request

    def request(*args: Any, _request_timeout: Any = None, **kw: Any) -> Any:
        return send(*args, _request_timeout=_request_timeout or timeout, **kw)

    rest.request = request
    rest.sharedvol_tuned = True


def _cap(pool: urllib3.PoolManager) -> None:
    """Read every answer of ``pool`` with :data:`sharedvol.answers.CAP` and :data:`ANSWER_DEADLINE_S`.

    kfp_server_api reads answers whole, and waits its read timeout for each part of one, however many there are.
    """
    send = pool.request

    def request(method: str, url: str, *args: Any, preload_content: bool = True, **kw: Any) -> Any:
        r = send(method, url, *args, preload_content=False, **kw)
        try:
            return answers.whole(r, f"{method} {url.split('?')[0]}", deadline_s=ANSWER_DEADLINE_S)
        except answers.TooLarge as e:
            raise kfp_server_api.ApiValueError(str(e)) from e

    pool.request = request  # type: ignore[method-assign]


def _server_message(body: bytes | str | None) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        doc = json.loads(text)
    except ValueError:
        first = text.strip().splitlines()
        return f" ({first[0][:200]})" if first else ""
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("error") or ""
        return f" ({str(msg)[:300]})" if msg else ""
    return ""
