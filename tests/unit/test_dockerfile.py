"""docker/Dockerfile: its install commands name exactly the pinned requirement set (hadolint: tests/host)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.paths import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"
# pip options that take packages from another place than the index's pinned versions, and options with a value.
ELSEWHERE = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-U", "--upgrade", "-e", "--editable"}
TAKES_VALUE = {"-c", "--constraint", "-t", "--target", "--prefix", "--root", "--progress-bar"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, args = full.partition(" ")
        out.append((word.upper(), args.strip()))
    return out


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line (split on &&, ||, ;, |), as argument lists."""
    commands: list[list[str]] = [[]]
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    for token in lexer:
        if token in {"&&", "||", ";", "|", "(", ")", ">", "2>"}:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


@dataclass
class Installs:
    """What a Dockerfile's pip commands install."""

    requirement_files: list[str] = field(default_factory=list)
    constraint_files: list[str] = field(default_factory=list)
    constrained: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def pip_installs(text: str) -> Installs:
    """Every ``pip install`` of the Dockerfile ``text``, classified; anything unpinned is a problem."""
    found = Installs()
    copied = {}
    for word, args in instructions(text):
        if word == "COPY":
            parts = [a for a in shlex.split(args) if not a.startswith("--")]
            for src in parts[:-1]:
                dest = parts[-1]
                copied[dest if not dest.endswith("/") else dest + Path(src).name] = src
            continue
        if word != "RUN":
            continue
        for cmd in shell_commands(args):
            if "pip" not in [Path(c).name for c in cmd[:3]] and cmd[:3] != ["python3", "-m", "pip"]:
                continue
            if "install" not in cmd:
                continue
            rest = cmd[cmd.index("install") + 1 :]
            no_deps = "--no-deps" in rest
            constraints = [rest[i + 1] for i, a in enumerate(rest[:-1]) if a in {"-c", "--constraint"}]
            found.constraint_files += [copied.get(c, f"<not copied: {c}>") for c in constraints]
            i = 0
            while i < len(rest):
                arg = rest[i]
                if arg in {"-r", "--requirement"}:
                    found.requirement_files.append(copied.get(rest[i + 1], f"<not copied: {rest[i + 1]}>"))
                    i += 2
                    continue
                option = arg.split("=")[0]
                if option in ELSEWHERE:
                    found.problems.append(f"{option}: installs from elsewhere or past the pins")
                    i += 1 if "=" in arg or option in {"-U", "--upgrade"} else 2
                    continue
                if arg.startswith("-"):
                    i += 2 if arg in TAKES_VALUE else 1
                    continue
                if PIN.match(arg):
                    found.pinned.append(arg)
                elif arg.startswith(("/", ".")) and no_deps:
                    found.local.append(arg)
                elif constraints and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", arg):
                    found.constrained.append(arg)
                else:
                    found.problems.append(f"{arg}: not pinned with == (nor a local path with --no-deps)")
                i += 1
    return found


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def test_every_line_of_requirements_txt_is_an_exact_pin() -> None:
    lines = requirement_lines(REPO / "requirements.txt")
    assert lines
    assert [line for line in lines if not PIN.match(line)] == []


def test_the_images_install_only_pins_of_requirements_txt_and_the_project_without_dependencies() -> None:
    found = pip_installs(DOCKERFILE.read_text())
    assert found.problems == []
    assert found.requirement_files == ["requirements.txt"]
    assert found.constraint_files == ["requirements.txt"] * 2
    pinned_names = {line.split("==")[0] for line in requirement_lines(REPO / "requirements.txt")}
    assert sorted(found.constrained) == ["blake3", "fsspec", "kopf", "kubernetes", "numpy", "pydantic"]
    assert set(found.constrained) <= pinned_names
    assert found.pinned == []
    assert found.local == ["/tmp/sharedvol/dist/*.whl"] * 3


def test_an_extra_unpinned_install_would_be_caught() -> None:
    text = DOCKERFILE.read_text() + "\nRUN python3 -m pip install --no-cache-dir requests && pip install numpy==2.4.0\n"
    found = pip_installs(text)
    assert found.problems == ["requests: not pinned with == (nor a local path with --no-deps)"]
    assert found.pinned == ["numpy==2.4.0"]


@pytest.mark.parametrize("flag", ["--extra-index-url https://example.org/simple", "--upgrade"])
def test_installing_from_another_index_or_upgrading_would_be_caught(flag: str) -> None:
    text = DOCKERFILE.read_text() + f"\nRUN pip install --no-cache-dir {flag} -r /tmp/sharedvol/src/requirements.txt\n"
    assert len(pip_installs(text).problems) == 1


def test_every_stage_starts_from_debian_bookworm_slim_or_an_earlier_stage() -> None:
    froms = [args.split() for word, args in instructions(DOCKERFILE.read_text()) if word == "FROM"]
    assert froms[0] == ["debian:bookworm-slim", "AS", "base"]
    stages = {"base"}
    for base, _, name in froms[1:]:
        assert base in stages
        stages.add(name)
    assert [f[2] for f in froms] == ["base", "project", "provisioner", "dataplane", "step"]


def test_the_images_run_as_a_non_root_user_and_the_tools_through_the_sharedvol_entry_point() -> None:
    steps = instructions(DOCKERFILE.read_text())
    users = [args for word, args in steps if word == "USER"]
    assert users and all(user.split(":")[0] not in {"root", "0"} for user in users)
    assert [args for word, args in steps if word == "ENTRYPOINT"] == ['["sharedvol"]', '["python3"]', '["sharedvol"]']
    cmds = [args for word, args in steps if word == "CMD"]
    assert cmds == ['["serve"]', '["-c", "import steps.checkpoint"]', '["--help"]']
    assert [word for word, _ in steps if word == "WORKDIR"]


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    rules = requirement_lines(REPO / ".dockerignore")
    assert rules[0] == "*"
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    sources = set()
    for word, args in instructions(DOCKERFILE.read_text()):
        if word == "COPY" and not args.startswith("--from="):  # --from: a file of an earlier stage
            sources.update(a for a in shlex.split(args)[:-1] if not a.startswith("--"))
    assert sources == allowed
    assert all((REPO / src).exists() for src in sources)


def test_extra_ca_certificates_given_at_build_time_go_into_the_trust_store_before_any_pip_install() -> None:
    steps = instructions(DOCKERFILE.read_text())
    declared = next(i for i, (word, args) in enumerate(steps) if word == "ARG" and args.startswith("EXTRA_CA_CERTS"))
    trusted = next(i for i, (word, args) in enumerate(steps) if word == "RUN" and "update-ca-certificates" in args)
    first_pip = next(i for i, (word, args) in enumerate(steps) if word == "RUN" and "pip install" in args)
    assert declared < trusted < first_pip
    assert "$EXTRA_CA_CERTS" in steps[trusted][1] and "/usr/local/share/ca-certificates/" in steps[trusted][1]
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in " ".join(a for w, a in steps if w == "ENV")


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """The instructions of each stage of a Dockerfile, by stage name."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, args in instructions(text):
        if word == "FROM":
            current = out.setdefault(args.split()[-1], [])
        current.append((word, args))
    return out


def test_the_project_is_built_once_and_every_image_installs_that_wheel_last() -> None:
    built = stages(DOCKERFILE.read_text())
    packages = {"sharedvol", "storage", "steps", "pipelines"}
    copied = {a.split()[0] for w, a in built["project"] if w == "COPY"}
    assert packages <= copied
    assert any(w == "RUN" and "pip wheel" in a and "--wheel-dir /tmp/sharedvol/dist" in a for w, a in built["project"])
    for image in ("provisioner", "dataplane", "step"):
        steps = built[image]
        assert not packages & {a.split()[0] for w, a in steps if w == "COPY"}, f"{image} copies the sources"
        wheel = steps.index(("COPY", "--from=project /tmp/sharedvol/dist /tmp/sharedvol/dist"))
        later_runs = [a for w, a in steps[wheel + 1 :] if w == "RUN"]
        assert [a.split("&&")[0].strip() for a in later_runs] == [
            "python3 -m pip install --no-cache-dir --no-deps /tmp/sharedvol/dist/*.whl"
        ]
