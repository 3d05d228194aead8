"""Run the provisioner: logging, kopf's event loop, the health endpoint."""

from __future__ import annotations

import asyncio
import logging

import kopf

from storage.provisioner import operator, settings


def run(config: settings.Settings) -> None:
    """Serve the provisioner until SIGINT/SIGTERM."""
    logging.getLogger().handlers.clear()  # kopf's handler replaces the CLI's plain one: one line per record
    kopf.configure(
        verbose=False,
        log_format=kopf.LogFormat.JSON if config.log_json else kopf.LogFormat.PLAIN,
        log_refkey="sharedvol.io/object",
    )
    logging.getLogger("sharedvol.provisioner").setLevel(logging.INFO)
    operator.configure(config)
    liveness = f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None
    asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=liveness))
