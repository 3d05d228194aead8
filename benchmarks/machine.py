"""The machine details every benchmark prints beside its numbers, and the forms it prints them in."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable, Sequence
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


def spread(seconds: Sequence[float], digits: int = 2) -> str:
    """``median 1.23 s, max 1.50 s``: the median and the worst of ``seconds``, with ``digits`` decimals."""
    return f"median {statistics.median(seconds):.{digits}f} s, max {max(seconds):.{digits}f} s"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a Markdown table (what BENCHMARKS.md holds): ``header``, then one line per row of ``rows``."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
