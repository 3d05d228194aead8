"""A client for one ML Metadata store of the real KFP tier, through its server or on the SQLite file itself."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Mlmd:
    """A client for one MLMD store: ``call`` goes through the server, ``call_store`` opens the file itself."""

    python: Path
    port: int
    db: Path
    web_port: int = 0  # its gRPC-web endpoint, where the server was given one

    def _run(self, where: list[str], method: str, request: dict[str, Any]) -> dict[str, Any]:
        client = str(Path(__file__).with_name("mlmd_client.py"))
        out = subprocess.run(
            [str(self.python), client, *where, method, json.dumps(request)], capture_output=True, text=True, check=False
        )
        if out.returncode not in (0, 3):
            raise AssertionError(f"mlmd_client {method} failed ({out.returncode}): {out.stderr.strip()[-800:]}")
        return dict(json.loads(out.stdout))

    def call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        """``method`` over gRPC, through the forwarding server."""
        return self._run(["--port", str(self.port)], method, request)

    def call_store(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        """``method`` on the SQLite store directly, with ml-metadata's own library and no server."""
        return self._run(["--db", str(self.db)], method, request)
