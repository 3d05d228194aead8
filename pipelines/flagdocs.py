"""The flag table of docs/pipeline.md, generated from the argparse parsers of compile, submit, run and demo.

One row per flag, help text and default; the commands that share them are listed in the row. Defaults are
argparse's, read with ``SHAREDVOL_IMAGE`` and ``KF_PIPELINES_ENDPOINT`` unset. ``python -m pipelines.flagdocs``
prints the table; ``tests/unit/test_params.py`` checks that docs/pipeline.md holds it between the markers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines import cli

COMMANDS = ("compile", "submit", "run", "demo")
BEGIN = (
    "<!-- flags: generated from argparse by `python -m pipelines.flagdocs`; checked by tests/unit/test_params.py -->"
)
END = "<!-- end of the generated flags -->"
ENV = ("SHAREDVOL_IMAGE", "KF_PIPELINES_ENDPOINT")
_DEFAULT_IN_HELP = re.compile(r"\s*\(default:? ([^()]*)\)\s*$")


@contextlib.contextmanager
def _without_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """The parsers of :data:`COMMANDS`, built without the environment variables that change defaults."""
    with _without_env():
        parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: sub.choices[name] for name in COMMANDS}


def flag(action: argparse.Action) -> str:
    """How the docs spell a flag: ``--storage SPEC``, ``-o, --output OUTPUT``, ``--[no-]amp``."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return "--[no-]" + action.option_strings[0][2:]
    names = ", ".join(s for s in action.option_strings if not s.startswith("--no-"))
    if action.nargs == 0:
        return names
    metavar = action.metavar or (action.dest.upper() if not action.choices else "{" + ",".join(action.choices) + "}")
    return f"{names} {metavar}"


def default(action: argparse.Action) -> tuple[str, str]:
    """The help text without its ``(default ...)`` and the default as the docs show it.

    The default is argparse's; where that is empty (``None``, ``""``, ``[]``), what the help says happens.
    """
    text = action.help or ""
    said = _DEFAULT_IN_HELP.search(text)
    if said:
        text = text[: said.start()]
    value: Any = action.default
    if value in (None, "", []) and said:  # "none" says less than what the help says happens
        shown = said.group(1)
    elif value is None:
        shown = "none"
    elif isinstance(value, bool):
        shown = "on" if value else "off"
    elif value == [] or value == "":
        shown = "none" if value == [] else '`""`'
    elif isinstance(value, float) and value.is_integer():
        shown = f"`{int(value)}`"
    else:
        shown = f"`{value}`"
    return text, shown


def rows() -> list[tuple[str, str, str, str]]:
    """(flag, commands, help, default) for every documented flag, in the order the commands declare them."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for command, parser in subparsers().items():
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.dest == "help":
                continue
            text, shown = default(action)
            found.setdefault((flag(action), text, shown), []).append(command)
    return [(f, ", ".join(cmds), text, shown) for (f, text, shown), cmds in found.items()]


def table() -> str:
    """The markdown table, markers included."""

    def cell(text: str) -> str:  # outside backticks: < and > would read as HTML
        return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

    lines = [BEGIN, "| Flag | Commands | Description | Default |", "|---|---|---|---|"]
    bar = "\\|"
    lines += [f"| `{f.replace('|', bar)}` | {c} | {cell(t)} | {cell(d)} |" for f, c, t, d in rows()]
    return "\n".join([*lines, END])


def documented(page: Path) -> str:
    """The generated block as it stands in ``page`` (empty when the markers are missing)."""
    text = page.read_text()
    start, end = text.find(BEGIN), text.find(END)
    return text[start : end + len(END)] if 0 <= start < end else ""


def update(page: Path) -> None:
    """Write the current table into ``page``, replacing the block between the markers."""
    text, old = page.read_text(), documented(page)
    if not old:
        raise ValueError(f"{page} has no block between {BEGIN!r} and {END!r}")
    page.write_text(text.replace(old, table()))


if __name__ == "__main__":
    print(table())
