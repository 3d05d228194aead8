"""The docs stay true to the code: links resolve, and every command they show parses.

These tests read README.md and docs/*.md, so moving text around is free: what they check is that what the
text points at (a page, a heading, a subcommand and its flags, a make target) exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rig.paths import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (outside code blocks)."""
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    """Every link target of a page outside code blocks, except web addresses."""
    text = FENCE.sub("", page.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def shown_commands(prog: str) -> list[tuple[Path, str]]:
    """Every ``prog ...`` command line shown in a shell code block of the docs."""
    found = []
    for page in PAGES:
        for lang, body in FENCE.findall(page.read_text()):
            if lang not in ("bash", "sh", "console", ""):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                line = re.sub(r"\[([^\]|]*)\|[^\]]*\]", r"[\1]", line)  # [a|b]: the first alternative
                for part in re.split(r"&&|;|\|(?!\|)", line):
                    part = part.strip()
                    if part.startswith(prog + " "):
                        found.append((page, part))
    return found


def argv_of(command: str) -> list[str]:
    """The argv of a docs command: comments, redirections and optional brackets removed."""
    command = re.sub(r"\s#.*$", "", command)
    command = re.sub(r"\[([^\]]*)\]", r"\1", command)
    words = shlex.split(command)
    argv = []
    for word in words[1:]:
        if word in (">", "2>", ">>", "&") or word.startswith((">", "2>")):
            break
        argv.append(word)
    return argv


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_in_the_docs_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert broken == []


def test_the_docs_show_sharedvol_commands_at_all() -> None:
    # A guard for the parse test below: if the extraction broke, it would check nothing.
    assert len(shown_commands("sharedvol")) >= 15


@pytest.mark.parametrize(
    "page,command",
    shown_commands("sharedvol"),
    ids=[f"{p.name}:{c[:60]}" for p, c in shown_commands("sharedvol")],
)
def test_every_sharedvol_command_in_the_docs_parses_with_the_cli(page: Path, command: str) -> None:
    from pipelines import cli

    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv_of(command))
    except SystemExit as e:  # argparse's way of refusing
        pytest.fail(f"{page.name}: `{command}` does not parse (exit {e.code})")
    assert callable(args.func)


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    named = {t for _, c in shown_commands("make") for t in argv_of(c) if re.fullmatch(r"[a-z][a-z0-9-]*", t)}
    assert named, "the docs name no make target at all: the extraction broke"
    assert named - targets == set()


def test_the_demo_directory_the_docs_name_is_the_one_make_demo_uses() -> None:
    makefile = (REPO / "Makefile").read_text()
    demo_dir = re.search(r"^DEMO_DIR \?= \$\(CURDIR\)/(\S+)$", makefile, re.M)
    assert demo_dir, "the Makefile no longer sets DEMO_DIR under the checkout"
    assert f"make demo = --output ./{demo_dir.group(1)}" in (REPO / "docs" / "pipeline.md").read_text()


def test_make_demo_ends_by_naming_the_target_that_installs_the_command() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no demo target"
    last = recipe.group(1).strip().splitlines()[-1]
    assert "make install" in last
    install = re.search(r"^install:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert install and install.group(1).strip() == "@scripts/install.sh"
