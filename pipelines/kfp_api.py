"""A small client for the KFP v2beta1 REST API: the calls ``sharedvol submit`` makes, with plain ``requests``.

Request and response bodies follow the ``kfp_server_api`` models (``V2beta1Pipeline``, ``V2beta1PipelineVersion``,
``V2beta1Experiment``, ``V2beta1Run``); the tests check every body against them. Reads are retried on
connection errors, 429 and 5xx along a finite backoff; writes are not retried (a repeated create-run would
start a second run). 401/403 and an unreachable host are clear one-line errors.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from pipelines import errors

log = logging.getLogger(__name__)

API = "/apis/v2beta1"
IN_CLUSTER_TOKEN_PATHS = ("/var/run/secrets/kubeflow/pipelines/token",)
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
PORT_FORWARD_HINT = (
    "check --host; from outside the cluster: kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 "
    "and --host http://localhost:8080"
)


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the KFP API.

    Attributes:
        host: the KFP endpoint, e.g. ``http://localhost:8080`` (port-forwarded UI),
            ``http://ml-pipeline.kubeflow.svc.cluster.local:8888`` (in-cluster API), or a Kubeflow gateway URL
            ending in ``/pipeline``.
        token: a bearer token (``Authorization: Bearer``); None sends none.
        namespace: the Kubernetes namespace of pipelines, experiments and runs (multi-user Kubeflow); None for
            single-user deployments.
        request_timeout_s: seconds to wait for one HTTP response. Default 30.
        read_backoff_s: the waits in seconds between retries of a read (connection error, 429, 5xx); its length
            is the number of retries. Default (1, 2, 4, 8).
        verify_tls: verify the server's certificate (a CA bundle path also works). Default True.
    """

    host: str
    token: str | None = None
    namespace: str | None = None
    request_timeout_s: float = 30.0
    read_backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    verify_tls: bool | str = True

    def validate(self) -> ApiSettings:
        """Refuse a host that is not an http(s) URL; return self."""
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
    import os

    env = dict(os.environ) if env is None else env
    candidates = ((env[TOKEN_PATH_ENV],) if env.get(TOKEN_PATH_ENV) else ()) + paths
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            continue
        if token:
            return token
    return None


class KfpApi:
    """The KFP v2beta1 calls ``submit`` needs.

    Args:
        settings: where the API is and how to authenticate.
        session: the HTTP session (a new one by default).
        sleep: how to wait between read retries (tests pass a no-op).
    """

    def __init__(
        self,
        settings: ApiSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings.validate()
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
        self._sleep = sleep

    def probe(self) -> None:
        """One ``GET /healthz`` without retries: fail fast on a wrong host or a refused token.

        Raises:
            KfpUnreachableError: nothing answers at the host.
            KfpAuthError: the server answered 401 or 403.
        """
        r = self._send("GET", "/healthz")
        if r.status_code in (401, 403):
            self._result("GET", "/healthz", r)

    # pipelines -------------------------------------------------------------------------------------------
    def get_pipeline_by_name(self, name: str) -> dict[str, Any] | None:
        """``GET /pipelines/names/{name}``: the ``V2beta1Pipeline`` or None."""
        return self._get(f"/pipelines/names/{name}", params=self._ns(), missing_ok=True)

    def create_pipeline(self, name: str, description: str) -> dict[str, Any]:
        """``POST /pipelines`` with a ``V2beta1Pipeline`` (no versions yet)."""
        body: dict[str, Any] = {"name": name, "display_name": name, "description": description}
        if self.settings.namespace:
            body["namespace"] = self.settings.namespace
        return self._write("POST", "/pipelines", json_body=body)

    def list_pipeline_versions(self, pipeline_id: str, page_size: int = 100, max_pages: int = 50) -> Iterator[dict]:
        """``GET /pipelines/{id}/versions``, newest first, page by page (at most ``max_pages``)."""
        token = ""
        for _ in range(max_pages):
            params = {"page_size": page_size, "sort_by": "created_at desc"}
            if token:
                params["page_token"] = token
            page = self._get(f"/pipelines/{pipeline_id}/versions", params=params) or {}
            yield from page.get("pipeline_versions") or []
            token = page.get("next_page_token") or ""
            if not token:
                return

    def upload_pipeline_version(self, pipeline_id: str, name: str, package: bytes, description: str) -> dict[str, Any]:
        """``POST /pipelines/upload_version`` (multipart ``uploadfile``): the new ``V2beta1PipelineVersion``."""
        params = {"name": name, "display_name": name, "pipelineid": pipeline_id, "description": description}
        files = {"uploadfile": (f"{name}.yaml", package, "application/x-yaml")}
        return self._write("POST", "/pipelines/upload_version", params=params, files=files)

    # experiments -----------------------------------------------------------------------------------------
    def find_experiment(self, display_name: str) -> dict[str, Any] | None:
        """The ``V2beta1Experiment`` with this display name in the namespace, or None."""
        flt = {"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": display_name}]}
        params: dict[str, Any] = {"filter": json.dumps(flt), "page_size": 10, **self._ns()}
        page = self._get("/experiments", params=params) or {}
        for exp in page.get("experiments") or []:
            if exp.get("display_name") == display_name:
                return exp
        return None

    def create_experiment(self, display_name: str, description: str) -> dict[str, Any]:
        """``POST /experiments`` with a ``V2beta1Experiment``."""
        body: dict[str, Any] = {"display_name": display_name, "description": description}
        if self.settings.namespace:
            body["namespace"] = self.settings.namespace
        return self._write("POST", "/experiments", json_body=body)

    # runs ------------------------------------------------------------------------------------------------
    def create_run(self, run: dict[str, Any]) -> dict[str, Any]:
        """``POST /runs`` with a ``V2beta1Run``: the created run."""
        return self._write("POST", "/runs", json_body=run)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """``GET /runs/{id}``: the ``V2beta1Run`` with its state and task details."""
        run = self._get(f"/runs/{run_id}")
        if run is None:  # pragma: no cover - missing_ok is False
            raise errors.KfpApiError(f"run {run_id} not found", hint="check the run id")
        return run

    def pod_log(self, pod_name: str, namespace: str) -> str | None:
        """A task pod's log through the KFP UI server (``GET /k8s/pod/logs``), or None when that is not offered.

        Only the UI server (and a Kubeflow gateway in front of it) serves this path, not the bare API server.
        """
        url = f"{self.settings.base}/k8s/pod/logs"
        try:
            r = self.session.get(
                url,
                params={"podname": pod_name, "podnamespace": namespace},
                timeout=self.settings.request_timeout_s,
                verify=self.settings.verify_tls,
            )
        except requests.RequestException as e:
            log.debug("pod log of %s not available: %s", pod_name, e)
            return None
        if r.status_code != 200:
            log.debug("pod log of %s not available: HTTP %s", pod_name, r.status_code)
            return None
        return r.text

    # plumbing --------------------------------------------------------------------------------------------
    def _ns(self) -> dict[str, str]:
        return {"namespace": self.settings.namespace} if self.settings.namespace else {}

    def _get(self, path: str, *, params: dict[str, Any] | None = None, missing_ok: bool = False) -> Any:
        waits = self.settings.read_backoff_s
        for attempt in range(len(waits) + 1):
            try:
                r = self._send("GET", path, params=params)
            except errors.KfpUnreachableError:
                if attempt == len(waits):
                    raise
                log.warning(
                    "GET %s: attempt %d failed (unreachable); will retry in %ss", path, attempt + 1, waits[attempt]
                )
                self._sleep(waits[attempt])
                continue
            if r.status_code == 404 and missing_ok:
                return None
            if (r.status_code == 429 or r.status_code >= 500) and attempt < len(waits):
                log.warning("GET %s: HTTP %d; will retry in %ss", path, r.status_code, waits[attempt])
                self._sleep(waits[attempt])
                continue
            return self._result("GET", path, r)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, method: str, path: str, **kw: Any) -> Any:
        return self._result(method, path, self._send(method, path, **kw))

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        files: dict[str, Any] | None = None,
    ) -> requests.Response:
        url = f"{self.settings.base}{API}{path}"
        try:
            return self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                files=files,
                timeout=self.settings.request_timeout_s,
                verify=self.settings.verify_tls,
            )
        except requests.Timeout as e:
            raise errors.KfpUnreachableError(
                f"the KFP API at {self.settings.base} did not answer within {self.settings.request_timeout_s:g} s",
                hint=PORT_FORWARD_HINT,
            ) from e
        except requests.RequestException as e:
            reason = type(e).__name__
            raise errors.KfpUnreachableError(
                f"cannot reach the KFP API at {self.settings.base} ({reason})", hint=PORT_FORWARD_HINT
            ) from e

    def _result(self, method: str, path: str, r: requests.Response) -> Any:
        if r.status_code in (401, 403):
            what = "401 Unauthorized" if r.status_code == 401 else "403 Forbidden"
            ns = f" in namespace {self.settings.namespace!r}" if self.settings.namespace else ""
            hint = (
                "pass a valid --token (e.g. the output of kubectl create token), or run in a pod that has the KFP "
                "service-account token"
                if r.status_code == 401
                else f"the identity behind the token may not use KFP{ns}; ask for access or pass --namespace"
            )
            raise errors.KfpAuthError(
                f"the KFP API refused {method} {API}{path}: {what}{_server_message(r)}", hint=hint
            )
        if r.status_code >= 400:
            raise errors.KfpApiError(
                f"{method} {API}{path} failed: HTTP {r.status_code}{_server_message(r)}",
                hint="check the KFP API server's version (v2beta1 is needed) and its logs",
            )
        if not r.content:
            return {}
        try:
            return r.json()
        except ValueError as e:
            raise errors.KfpApiError(
                f"{method} {API}{path} answered HTTP {r.status_code} with something that is not JSON",
                hint="is --host the KFP endpoint (not the Kubeflow login page)?",
            ) from e


def _server_message(r: requests.Response) -> str:
    try:
        doc = r.json()
    except ValueError:
        text = r.text.strip().splitlines()
        return f" ({text[0][:200]})" if text else ""
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("error") or ""
        return f" ({str(msg)[:300]})" if msg else ""
    return ""
