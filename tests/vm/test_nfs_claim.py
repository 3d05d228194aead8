"""A claim of StorageClass sharedvol-nfs on two nodes: the CSI controller (on the VM node) makes the claim's
directory on the share, two pods on the VM node mount it at once through the VM's kernel and write and read the same
files, and deleting the claim archives the directory (``onDelete: archive``). The share is the host node's
``/var/lib/sharedvol-nfs``, read here directly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rig import kwait
from rig.vm import guest
from tests.node import pods
from tests.vm import nfs
from tests.vm.nfs import BUSYBOX, EXPORT_DIR

WAIT = 'for _ in $(seq 600); do [ -f "$1" ] && break; sleep 0.5; done; [ -f "$1" ]'


@dataclass
class SharedClaim:
    """The claim, its volume, and how its two pods ended."""

    namespace: str
    claim: str
    volume: str
    writer: pods.PodResult
    reader: pods.PodResult
    nodes: set[str]

    @property
    def directory_name(self) -> str:
        """The class's subDir: ``<namespace>-<claim>-<pv>``."""
        return f"{self.namespace}-{self.claim}-{self.volume}"


def _pod(name: str, claim: str, script: str) -> dict[str, Any]:
    wait = f"wait_for() {{ {WAIT}; }}"
    return pods.step_pod(name, [f"set -eu; {wait}; {script}"], claim=claim, image=BUSYBOX, command=["sh", "-c"])


@pytest.fixture(scope="module")
def shared(nfs_installed: None, vm_api: Any) -> Iterator[SharedClaim]:
    """A namespace, a claim of sharedvol-nfs Bound, and two pods on it at once: each writes a file and reads the
    other's."""
    with nfs.bound_claim(vm_api, "nfs-claim") as bound:
        runner = pods.PodRunner(vm_api, bound.namespace)
        writer = _pod(
            "writer", bound.name,
            "grep ' /mnt/shared ' /proc/mounts; echo from-writer > /mnt/shared/a.txt; "
            "wait_for /mnt/shared/b.txt; echo \"writer read: $(cat /mnt/shared/b.txt)\"",
        )  # fmt: skip
        reader = _pod(
            "reader", bound.name,
            "wait_for /mnt/shared/a.txt; echo \"reader read: $(cat /mnt/shared/a.txt)\"; "
            "echo from-reader > /mnt/shared/b.txt",
        )  # fmt: skip
        runner.create(writer)
        runner.create(reader)
        names = ("writer", "reader")
        done = {n: runner.wait(n, lambda p: p.status.phase in pods.DONE, 600, f"{n} done") for n in names}
        results = {n: pods.PodResult(p.status.phase, runner.logs(n), None) for n, p in done.items()}
        yield SharedClaim(
            bound.namespace, bound.name, bound.volume, results["writer"], results["reader"],
            {p.spec.node_name for p in done.values()},
        )  # fmt: skip


def test_a_claim_of_sharedvol_nfs_gets_its_own_directory_on_the_share(shared: SharedClaim) -> None:
    assert (EXPORT_DIR / shared.directory_name).is_dir(), sorted(p.name for p in EXPORT_DIR.iterdir())


def test_two_pods_on_the_vm_node_write_and_read_the_same_files_at_once(shared: SharedClaim) -> None:
    assert shared.nodes == {guest.VM_NODE_NAME}
    assert (shared.writer.phase, shared.reader.phase) == ("Succeeded", "Succeeded"), (shared.writer, shared.reader)
    assert "reader read: from-writer" in shared.reader.logs
    assert "writer read: from-reader" in shared.writer.logs


def test_the_files_the_pods_wrote_are_on_the_servers_disk(shared: SharedClaim) -> None:
    directory = EXPORT_DIR / shared.directory_name
    assert (directory / "a.txt").read_text() == "from-writer\n"
    assert (directory / "b.txt").read_text() == "from-reader\n"


def test_a_pod_sees_its_claim_mounted_by_the_kernel_over_nfs_4_1_hard(shared: SharedClaim) -> None:
    (line,) = [x for x in shared.writer.logs.splitlines() if " /mnt/shared " in x]
    source, _, fstype, options = line.split()[:4]
    assert source == f"nfs-server.sharedvol-nfs.svc.cluster.local:/{shared.directory_name}"
    assert fstype == "nfs4"
    assert {"vers=4.1", "hard"} <= set(options.split(",")), options


def test_deleting_the_claim_after_its_pods_archives_its_directory(shared: SharedClaim, vm_api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(vm_api)
    # A claim stays while any pod that names it exists, Completed ones too (pvc-protection): the run's pods go first.
    for name in ("writer", "reader"):
        core.delete_namespaced_pod(name, shared.namespace)
        kwait.gone(core.list_namespaced_pod, name, shared.namespace, timeout=120)
    core.delete_namespaced_persistent_volume_claim(shared.claim, shared.namespace)
    kwait.gone(core.list_persistent_volume, shared.volume, timeout=300)
    archived = EXPORT_DIR / f"archived-{shared.directory_name}"
    assert not (EXPORT_DIR / shared.directory_name).exists()
    assert (archived / "a.txt").read_text() == "from-writer\n"
    assert (archived / "b.txt").read_text() == "from-reader\n"
