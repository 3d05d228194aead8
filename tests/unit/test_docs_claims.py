"""Claims of README.md and docs/ that a file can prove: each checked against the file that makes it true."""

from __future__ import annotations

import os
import re
import subprocess

from rig.paths import REPO
from tests import tiers

DOCS = REPO / "docs"


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n")
    end = text.find(f"\n{level} ", start + len(heading) + 2)
    return text[start : end if end >= 0 else None]


def test_docs_image_md_names_the_packages_the_build_context_holds() -> None:
    claim = re.compile(r"and the (\w+) packages\s+((?:`\w+`(?:, | and )?)+) \(`\.dockerignore`\)")
    said = claim.search((DOCS / "image.md").read_text())
    assert said, "docs/image.md no longer says which packages the build context holds"
    packages = re.findall(r"`(\w+)`", said.group(2))
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:-1] for line in ignore if line.startswith("!") and line.endswith("/")}
    assert set(packages) == allowed
    assert said.group(1) == {2: "two", 3: "three", 4: "four", 5: "five"}[len(packages)]


def test_docs_run_md_points_at_the_real_backend_test_of_sharedvol_run() -> None:
    text = (DOCS / "run.md").read_text()
    assert "not against a live Kubeflow" not in text
    test_file = REPO / "tests" / "kfp_backend" / "real" / "test_journey_node.py"
    assert f"`{test_file.relative_to(REPO)}`" in text
    assert "def test_sharedvol_run_makes_the_static_volume_and_runs_the_pipeline_to_success" in test_file.read_text()


def test_every_marker_the_docs_name_is_a_tier_marker() -> None:
    pages = [REPO / "README.md", *DOCS.glob("*.md")]
    named = {marker for page in pages for marker in re.findall(r"marker `(\w+)`", page.read_text())}
    assert named and named <= set(tiers.TIERS.values())


def test_docs_kfp_backend_md_names_the_marker_its_tests_carry() -> None:
    tests_section = section((DOCS / "kfp-backend.md").read_text(), "## Tests")
    assert set(re.findall(r"marker `(\w+)`", tests_section)) == {tiers.TIERS["kfp_backend/real"]}


def test_docs_tests_md_lists_the_debian_packages_make_test_installs() -> None:
    script = (REPO / "scripts" / "node" / "packages.sh").read_text()
    installed = re.search(r"^packages=\(([^)]*)\)", script, re.M)
    assert installed
    listed = section((DOCS / "tests.md").read_text(), "### The real-node tier (tests/node, marker `node`)")
    assert [p for p in installed.group(1).split() if p not in listed] == []


def test_the_readme_says_what_a_fresh_debian_needs_first() -> None:
    quick_start = section((REPO / "README.md").read_text(), "## Quick start")
    for needed in ("make", "python3-venv", "go1.26"):
        assert needed in quick_start


def make_plan(target: str) -> list[str]:
    """The commands ``make -n TARGET`` would run, one per line (continuations joined); nothing is run."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under make test too
    cmd = ["make", "--no-print-directory", "-n", target]
    plan = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60)
    out = plan.stdout
    return out.replace("\\\n", " ").splitlines()


def test_make_test_checks_what_it_needs_first_and_lints_before_the_long_builds() -> None:
    plan = make_plan("test")
    assert plan[0] == "scripts/preflight.sh"
    joined = "\n".join(plan)
    assert joined.index("bin/ruff check .") < joined.index("bin/lint-imports") < joined.index("controlplane/build.sh")
    assert joined.index("scripts/controlplane/build.sh") < joined.index("-m pytest")


def test_preflight_names_every_missing_piece_at_once_and_how_to_get_it() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": "/nonexistent/python3", "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run([str(REPO / "scripts" / "preflight.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    first, *fixes = proc.stderr.strip().splitlines()
    assert first.startswith("make test: missing before anything is built: ")
    assert "Python 3.11 or newer" in first and "Go 1.26" in first
    assert any("https://go.dev/dl" in fix for fix in fixes) and any("PYTHON=" in fix for fix in fixes)


def test_preflight_refuses_a_machine_without_the_free_disk_the_tiers_need() -> None:
    env = {**os.environ, "SHAREDVOL_NEED_FREE_GIB": "1000000"}
    proc = subprocess.run([str(REPO / "scripts" / "preflight.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert "1000000 GiB free under " in first and "(found " in first
    assert "pytest-of-" in proc.stderr


def test_make_install_puts_the_environment_and_the_link_where_the_readme_says() -> None:
    script = (REPO / "scripts" / "install.sh").read_text()
    assert "home=${SHAREDVOL_HOME:-$HOME/.local/share/sharedvol}" in script and "venv=$home/venv" in script
    assert "bin_dir=${BIN_DIR:-/usr/local/bin}; else bin_dir=${BIN_DIR:-$HOME/.local/bin}" in script
    readme = section((REPO / "README.md").read_text(), "## Quick start")
    assert "~/.local/share/sharedvol/venv" in readme and "/usr/local/bin (as root) or ~/.local/bin" in readme
