"""Run a compiled pipeline through KFP 2.17.0's own backend code (the Go checker next to this file).

The checker binary is built and cached by ``scripts/kfpcheck/build.sh``; ``SHAREDVOL_KFPCHECK_BIN`` names a
built one (``make test`` exports it), else this module runs the build script (cached after the first build).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from rig.paths import REPO

BUILD = REPO / "scripts" / "kfpcheck" / "build.sh"


class CheckerError(RuntimeError):
    """The checker itself could not run (not: the backend refused the pipeline)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What KFP's backend made of one pipeline and one set of run parameters.

    Attributes:
        accepted: the API server would create the run.
        stage: where it was refused (``template``, ``compile``, ``validate``), "" when accepted.
        error: the backend's error, "" when accepted.
        workflow: the Argo Workflow the API server would create.
        tasks: per task name, what the container driver computes (``inputs``, ``platformOp``,
            ``dependencies``, ``condition``, ``resources``, ``volumes``, ``volumeMounts``, ``nodeSelector``,
            ``tolerations``, ``error``).
    """

    accepted: bool
    stage: str
    error: str
    workflow: dict[str, Any]
    tasks: dict[str, dict[str, Any]]

    def template(self, name_prefix: str) -> dict[str, Any]:
        """The one workflow template whose name starts with ``name_prefix``."""
        found = [t for t in self.workflow["spec"]["templates"] if t["name"].startswith(name_prefix)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} templates named {name_prefix}*")
        return found[0]


def binary() -> Path:
    """The checker binary: ``$SHAREDVOL_KFPCHECK_BIN``, else built (or reused) by the build script."""
    env = os.environ.get("SHAREDVOL_KFPCHECK_BIN")
    if env:
        return Path(env)
    done = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CheckerError(f"scripts/kfpcheck/build.sh failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def check(
    pipeline_yaml: Path,
    params: dict[str, Any],
    *,
    upstream: dict[str, dict[str, Any]] | None = None,
    checker: Path | None = None,
) -> Verdict:
    """Run ``pipeline_yaml`` with the runtime parameters ``params`` through the checker.

    ``upstream`` gives output parameters of upstream tasks (``{task: {output: value}}``); the others are
    stood in for by ``<task>-<output>`` (there is no MLMD).
    """
    exe = checker or binary()
    argv = [str(exe), "--pipeline", str(pipeline_yaml), "--params", json.dumps(params)]
    done = subprocess.run(
        [*argv, "--upstream", json.dumps(upstream or {})],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode not in (0, 3):
        raise CheckerError(f"kfpcheck exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    out = json.loads(done.stdout)
    if done.returncode == 3:
        return Verdict(False, out["stage"], out["error"], {}, {})
    return Verdict(True, "", "", out["workflow"], out["tasks"])
