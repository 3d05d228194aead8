"""The machine details every benchmark prints beside its numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    """One line: CPU model, core count, memory, OS and Python."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    system = f"{platform.system()} {platform.release()}"
    return f"{model}, {os.cpu_count()} cores{mem}, {system}, Python {platform.python_version()}"
