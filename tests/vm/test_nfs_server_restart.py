"""The NFS server pod killed and restarted while a pod on the VM node writes to its claim: the client's hard mount
waits for the new server and goes on, and every line written before the kill is still in the file."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig import kwait
from tests.node import pods
from tests.vm.nfs import BUSYBOX, EXPORT_DIR, NFS_NAMESPACE, ready

# One line per iteration, each an open-append-close (what a logging step does); it stops when the test says so.
WRITER = (
    'i=0; while [ ! -f /mnt/shared/stop ]; do i=$((i + 1)); echo "line $i" >> /mnt/shared/log.txt; done; '
    'echo "wrote $i"'
)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _grows_past(path: Path, count: int, timeout: float) -> int:
    """Wait (bounded) until the server's copy of ``path`` has more than ``count`` lines; the count seen."""
    deadline = time.monotonic() + timeout
    while (seen := len(_lines(path))) <= count:
        assert time.monotonic() < deadline, f"{path} stayed at {seen} lines for {timeout:.0f} s"
        # A file on the server's disk, written over NFS from the VM: nothing to watch, a short bounded back-off.
        time.sleep(0.5)
    return seen


@pytest.fixture(scope="module")
def restarted(nfs_installed: None, vm_api: Any) -> Iterator[dict[str, Any]]:
    """A writer on a claim; the server pod deleted mid-write and its replacement Ready; the writer stopped."""
    from kubernetes import client

    core = client.CoreV1Api(vm_api)
    namespace = f"nfs-restart-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    kwait.until(
        core.list_namespaced_service_account, lambda sa: True, namespace, what="ServiceAccount default",
        field_selector="metadata.name=default",
    )  # fmt: skip
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "log"},
            "spec": {
                "storageClassName": "sharedvol-nfs",
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "16Mi"}},
            },
        },
    )
    try:
        claim = kwait.until(
            core.list_namespaced_persistent_volume_claim, lambda c: c.status.phase == "Bound", namespace,
            timeout=300, what="claim log Bound", **kwait.named("log"),
        )  # fmt: skip
        directory = EXPORT_DIR / f"{namespace}-log-{claim.spec.volume_name}"
        runner = pods.PodRunner(vm_api, namespace)
        runner.create(pods.step_pod("writer", [WRITER], claim="log", image=BUSYBOX, command=["sh", "-c"]))
        before = _grows_past(directory / "log.txt", 50, 300)
        (old,) = core.list_namespaced_pod(NFS_NAMESPACE, label_selector="app.kubernetes.io/name=nfs-server").items
        core.delete_namespaced_pod(old.metadata.name, NFS_NAMESPACE, grace_period_seconds=0)
        new = kwait.until(
            core.list_namespaced_pod, lambda p: p.metadata.name != old.metadata.name and ready(p), NFS_NAMESPACE,
            timeout=180, what="a new nfs-server pod Ready", label_selector="app.kubernetes.io/name=nfs-server",
        )  # fmt: skip
        after = _grows_past(directory / "log.txt", len(_lines(directory / "log.txt")) + 50, 300)
        (directory / "stop").touch()
        done = runner.wait("writer", lambda p: p.status.phase in pods.DONE, 300, "writer done")
        yield {
            "before": before,
            "after": after,
            "lines": _lines(directory / "log.txt"),
            "phase": done.status.phase,
            "logs": runner.logs("writer"),
            "servers": (old.metadata.name, new.metadata.name),
        }
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)


def test_the_writer_goes_on_after_the_server_pod_is_replaced(restarted: dict[str, Any]) -> None:
    assert restarted["servers"][0] != restarted["servers"][1]
    assert restarted["after"] > restarted["before"]
    assert restarted["phase"] == "Succeeded", restarted["logs"]


def test_no_line_written_before_the_restart_is_lost_and_none_is_doubled(restarted: dict[str, Any]) -> None:
    lines = restarted["lines"]
    assert len(lines) >= restarted["after"]
    assert lines == [f"line {i}" for i in range(1, len(lines) + 1)]
    assert restarted["logs"].strip() == f"wrote {len(lines)}"
