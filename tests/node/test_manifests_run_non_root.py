"""Every container of the k8s/ manifests runs non-root, or its manifest says why right there (issue 10's audit).

A pure check of the files, kept with the node tier whose pods run these manifests for real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import cluster as cp

MANIFESTS = sorted((cp.REPO / "k8s").rglob("*.yaml"))
WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "Pod"}


def _containers(path: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, container, pod spec) of every container of the workloads in ``path``."""
    found = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") in WORKLOADS:
            spec = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
            found += [(c["name"], c, spec) for c in spec.get("initContainers", []) + spec["containers"]]
    return found


def runs_non_root(container: dict[str, Any], pod: dict[str, Any]) -> bool:
    """True when the container is forced non-root (runAsNonRoot, or a non-zero runAsUser) and not privileged."""
    merged = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    if merged.get("privileged"):
        return False
    return bool(merged.get("runAsNonRoot")) or merged.get("runAsUser", 0) != 0


def reason_given(text: str, name: str) -> bool:
    """True when the container block named ``name`` (with the comments just above it) has a comment on root."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)- name: " + re.escape(name) + r"\s*$", line)
        if not m or not any("image:" in x for x in lines[i + 1 : i + 3]):
            continue
        start = i
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        end = i + 1
        indent = len(m.group(1))
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        comments = [x for x in lines[start:end] if x.strip().startswith("#")]
        return any(re.search(r"\broot\b", x, re.IGNORECASE) for x in comments)
    return False


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(cp.REPO)))
def test_every_container_runs_non_root_or_its_manifest_says_why(path: Path) -> None:
    text = path.read_text()
    unexplained = [
        name
        for name, container, pod in _containers(path)
        if not runs_non_root(container, pod) and not reason_given(text, name)
    ]
    assert unexplained == []


def test_the_audit_catches_a_root_container_without_a_reason_and_accepts_one_with_it() -> None:
    bare = "spec:\n  containers:\n    - name: c\n      image: x\n"
    explained = "spec:\n  containers:\n    # runs as root: binds port 80\n    - name: c\n      image: x\n"
    assert not reason_given(bare, "c") and reason_given(explained, "c")
    assert not runs_non_root({"securityContext": {"runAsUser": 1000, "privileged": True}}, {})
    assert runs_non_root({}, {"securityContext": {"runAsNonRoot": True}})
