"""Run the provisioner: logging, a login check, the health endpoint, the periodic re-check and kopf's event loop.

Credentials the API server refuses (401), or no answer from it, stop the service at start in one line; credentials
refused later (a token revoked or expired while it runs) stop it at the next re-check, in one line too.
``/healthz`` answers 200 while the service can list claims (the last re-check worked and is recent), else
503 with the reason (no API server, no RBAC). A port that is taken stops the service at once, in one line.

Why not kopf's own liveness endpoint (``kopf.operator(liveness_endpoint=...)`` with ``@kopf.on.probe``): it
answers 200 whatever the probes return (a probe can only fail it by raising, which gives a bare 500 and a
traceback in the log), so it cannot say "503: cannot list claims: Forbidden"; and a taken port would end
kopf's task with a traceback instead of the one line below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from aiohttp import web
from kubernetes import client

from storage import errors, heartbeat, kube
from storage.provisioner import handlers, recheck, settings

HANDLERS = handlers  # importing the module registers its kopf handlers

log = logging.getLogger("sharedvol.provisioner")


def run(config: settings.Settings) -> None:
    """Serve the provisioner until SIGINT/SIGTERM.

    Raises:
        InvalidRequestError: the health port is taken.
        ForbiddenError: the API server refused the credentials (401).
        StorageError: no usable cluster configuration, or no answer from the API server.
    """
    logging.getLogger().handlers.clear()  # kopf's handler replaces the CLI's plain one: one line per record
    kopf.configure(
        verbose=False,
        log_format=kopf.LogFormat.JSON if config.log_json else kopf.LogFormat.PLAIN,
        log_refkey="sharedvol.io/object",
    )
    logging.getLogger("sharedvol.provisioner").setLevel(logging.INFO)
    api = kube.load_api_client(config.kubeconfig or None)
    core = client.CoreV1Api(api)
    state = recheck.Recheck(config)
    state.last_error = check_login(core) or state.last_error  # /healthz says why from its first answer
    memo = kopf.Memo(settings=config, core=core, recheck=state)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_refused_in_one_line)
    try:
        asyncio.run(_serve(config, core, state, memo))
    except kopf.LoginError as e:  # kopf's watch was refused (401) before the re-check noticed
        raise errors.ForbiddenError(
            "the API server refused the service's credentials (401 Unauthorized) while it ran",
            hint="give it a valid token (the pod's service account, or --kubeconfig FILE)",
        ) from e


def _refused_in_one_line(record: logging.LogRecord) -> bool:
    """Keep kopf's log of a refused login (401) to its line: no traceback, which says nothing more."""
    error = record.exc_info[1] if record.exc_info else None
    for _ in range(8):  # the chain of causes, bounded
        if error is None or isinstance(error, kopf.LoginError):
            break
        error = error.__cause__ or error.__context__
    if isinstance(error, kopf.LoginError):
        record.exc_info, record.exc_text = None, None
    return True


def check_login(core: client.CoreV1Api) -> str:
    """One call before kopf starts, so refused credentials are one line, not kopf's retries and tracebacks.

    Any other answer (403 Forbidden...) is not fatal: the service runs, and ``/healthz`` says what is wrong.

    Returns:
        why claims cannot be listed ("cannot list claims: Forbidden"), or "" when the list worked.

    Raises:
        ForbiddenError: 401, the credentials are not accepted.
        ApiError: no answer from the API server.
    """
    with kube.reachable("start sharedvol serve", core.api_client):
        try:
            core.list_persistent_volume_claim_for_all_namespaces(limit=1)  # bounded: kube.bounded
        except client.ApiException as e:
            if e.status == 401:
                raise errors.ForbiddenError(
                    f"the API server {kube.server(core.api_client)} refused the service's credentials "
                    "(401 Unauthorized)",
                    hint="give it a valid token: --kubeconfig FILE, or the pod's service account",
                ) from e
            log.warning("cannot list claims yet: HTTP %s %s", e.status, e.reason)
            return f"cannot list claims: {e.reason or e.status}"
        return ""


async def _serve(config: settings.Settings, core: client.CoreV1Api, state: recheck.Recheck, memo: kopf.Memo) -> None:
    # /healthz answers from the start (503 until the first list of claims worked): a first re-check that takes long
    # (many claims to provision or reclaim) must not keep the pod unready
    runner = await _health(config, state) if config.health_port else None
    stop = asyncio.Event()
    checking = asyncio.create_task(state.run(core, first_delay=0.0))
    beaten = asyncio.Event()
    beating = asyncio.create_task(state.beating(core, beaten))
    operator = asyncio.create_task(kopf.operator(clusterwide=True, standalone=True, memo=memo, stop_flag=stop))
    try:
        # The re-check ends only when the credentials were refused (401): stop kopf cleanly, then say it in one line
        await asyncio.wait({operator, checking}, return_when=asyncio.FIRST_COMPLETED)
        if checking.done():
            stop.set()
            await operator
            checking.result()
        await operator
    finally:
        beaten.set()  # its last renewal ends before the Lease is deleted below
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(beating), 10)
        for task in (checking, beating, operator):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(heartbeat.stop, core.api_client, config.namespace, config.node_name)
        if runner is not None:
            await runner.cleanup()


async def _health(config: settings.Settings, state: recheck.Recheck) -> Any:
    """Start ``/healthz`` on ``config.health_port``; the aiohttp runner (to clean up).

    Raises:
        InvalidRequestError: the port cannot be bound.
    """

    async def healthz(_request: web.Request) -> web.Response:
        ok, why = state.healthy()
        body = {"provisioner": config.provisioner, "claims": "ok" if ok else "failing", "detail": why}
        return web.json_response(body, status=200 if ok else 503)

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz)])
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", config.health_port).start()
    except OSError as e:
        await runner.cleanup()
        raise errors.InvalidRequestError(
            f"cannot serve /healthz on port {config.health_port} ({e.strerror or e})",
            hint="pick a free port with --health-port (or SHAREDVOL_HEALTH_PORT), or 0 for none",
        ) from e
    log.info("serving /healthz on port %d", config.health_port)
    return runner
