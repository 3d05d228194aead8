"""The ``sharedvol`` command as a user runs it, in a child process: the one way the tests run the CLI.

The fixture ``sharedvol`` of tests/conftest.py hands out :func:`run`; tests/controlplane's own ``sharedvol`` adds the
control plane's kubeconfig to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from rig.paths import REPO

Result = subprocess.CompletedProcess[str]
Run = Callable[..., Result]


def command(*args: str) -> list[str]:
    """The argv of ``sharedvol ARGS`` from this checkout (``python -m pipelines``, this interpreter)."""
    return [sys.executable, "-m", "pipelines", *args]


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the checkout on ``PYTHONPATH``, plus ``extra``."""
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def run(
    *args: str, kubeconfig: Path | str | None = None, env: Mapping[str, str] | None = None, timeout: float = 600
) -> Result:
    """Run ``sharedvol ARGS`` (``--kubeconfig K`` appended when given) to its end; its output is captured as text."""
    argv = command(*args) + (["--kubeconfig", str(kubeconfig)] if kubeconfig else [])
    return subprocess.run(
        argv, cwd=REPO, env=environment(env), capture_output=True, text=True, timeout=timeout, check=False
    )
