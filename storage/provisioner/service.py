"""Run the provisioner: logging, the health endpoint, the periodic re-check and kopf's event loop.

``/healthz`` answers 200 while the service can list claims (the last re-check worked and is recent), else
503 with the reason (no API server, no RBAC). A port that is taken stops the service at once, in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from storage import errors
from storage.provisioner import handlers, recheck, settings

log = logging.getLogger("sharedvol.provisioner")


def run(config: settings.Settings) -> None:
    """Serve the provisioner until SIGINT/SIGTERM.

    Raises:
        InvalidRequestError: the health port is taken.
        StorageError: no usable cluster configuration.
    """
    logging.getLogger().handlers.clear()  # kopf's handler replaces the CLI's plain one: one line per record
    kopf.configure(
        verbose=False,
        log_format=kopf.LogFormat.JSON if config.log_json else kopf.LogFormat.PLAIN,
        log_refkey="sharedvol.io/object",
    )
    logging.getLogger("sharedvol.provisioner").setLevel(logging.INFO)
    core = handlers.core_api(config)
    state = recheck.Recheck(config)
    memo = kopf.Memo(settings=config, core=core, recheck=state)
    asyncio.run(_serve(config, core, state, memo))


async def _serve(config: settings.Settings, core: Any, state: recheck.Recheck, memo: kopf.Memo) -> None:
    await asyncio.to_thread(state.once, core)  # so /healthz knows from its first answer whether claims can be listed
    runner = await _health(config, state) if config.health_port else None
    task = asyncio.create_task(state.run(core, first_delay=config.recheck_s))
    try:
        await kopf.operator(clusterwide=True, standalone=True, memo=memo)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if runner is not None:
            await runner.cleanup()


async def _health(config: settings.Settings, state: recheck.Recheck) -> Any:
    """Start ``/healthz`` on ``config.health_port``; the aiohttp runner (to clean up).

    Raises:
        InvalidRequestError: the port cannot be bound.
    """
    from aiohttp import web

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
