"""The steps' checkpoint handoff on a claim of sharedvol-nfs across two kernels' NFS clients: a pod on the first VM
node publishes three epochs with train-resnet's publish (steps.checkpoint), a pod on the second VM node waits for the
commit point and verifies what it names with test-resnet's reader, and the published weights load with test-resnet's
loader. The pods run the data-plane image (sharedvol-dataplane: the project without torch), because the step image
does not fit the VM (BENCHMARKS.md, "The step image in the VM node"); the loader with torch runs here, on the
server's disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rig import images, kwait
from rig.vm import guest, vmnode
from steps import checkpoint, safeload
from tests.node import pods
from tests.vm import nfs

EPOCHS = 3

PUBLISH = f"""
import os
from steps import checkpoint, schemas
settings = schemas.TrainingSettings(
    lr=0.1, batch_size=16, seed=0, augment="stock", amp=False, epochs={EPOCHS}, dataset_blake3="0" * 64
)
real = open("/mnt/shared/incoming/weights.safetensors", "rb").read()
os.makedirs("/mnt/shared/checkpoints", exist_ok=True)
for epoch in range(1, {EPOCHS} + 1):
    weights = real if epoch == {EPOCHS} else b"stand-in weights of epoch %d " % epoch * 4096
    manifest = checkpoint.publish(
        "/mnt/shared/checkpoints", epoch=epoch, weights=weights, resume=b"state of epoch %d " % epoch * 2048,
        loss_per_epoch=[1.0 / e for e in range(1, epoch + 1)], keep=1, settings=settings,
    )
    print("published", checkpoint.describe(manifest), flush=True)
"""

VERIFY = """
import sys, time
from steps import checkpoint
print([line for line in open("/proc/mounts") if " /mnt/shared " in line][0].strip(), flush=True)
url = "/mnt/shared/checkpoints/latest.json"
deadline = time.monotonic() + 600
while (seen := checkpoint.read_manifest(url)) is None or seen.epoch < int(sys.argv[1]):
    assert time.monotonic() < deadline, "no manifest of that epoch in 600 s"
    time.sleep(0.5)
manifest = checkpoint.require_manifest(url)
buf = checkpoint.read_verified(manifest, manifest.weights)
print("verified epoch", manifest.epoch, manifest.weights.name, len(buf), "bytes", flush=True)
"""


@dataclass
class Handoff:
    """The claim, the weights put on it, and how the publishing and the verifying pod ended."""

    claim: nfs.NfsClaim
    state: dict[str, Any]
    publisher: pods.PodResult
    verifier: pods.PodResult
    nodes: dict[str, str]
    runner: pods.PodRunner


def _dataplane_pod(name: str, node: str, claim: str, code: str, *args: str) -> dict[str, Any]:
    body = pods.step_pod(name, ["-c", code, *args], claim=claim, image=images.DATAPLANE_IMAGE)
    body["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return body


@pytest.fixture(scope="module")
def nfs_on_both_vms(nfs_installed: None, vm2_node: vmnode.VMNode, vm_api: Any) -> None:
    """k8s/nfs's node plugin Ready on the second VM node too (its DaemonSet starts a pod there when it joins)."""
    from kubernetes import client

    kwait.until(
        client.CoreV1Api(vm_api).list_namespaced_pod,
        lambda p: p.spec.node_name == vm2_node.name and nfs.ready(p),
        nfs.NFS_NAMESPACE,
        timeout=600,
        what=f"csi-nfs-node Ready on {vm2_node.name}",
        label_selector="app.kubernetes.io/name=csi-nfs-node",
    )


@pytest.fixture(scope="module")
def handoff(nfs_on_both_vms: None, vm_api: Any) -> Iterator[Handoff]:
    """Real safetensors weights (torch, here) put on a claim of sharedvol-nfs through the server's disk, then the
    publishing pod on the first VM node and the verifying pod on the second started at once."""
    import torch

    with nfs.bound_claim(vm_api, "nfs-steps") as claim:
        generator = torch.Generator().manual_seed(3)
        state = {
            "backbone.conv1.weight": torch.randn(64, 3, 3, 3, generator=generator),
            "backbone.bn1.num_batches_tracked": torch.tensor(7),
            "head.fc.weight": torch.randn(10, 512, generator=generator),
            "head.fc.bias": torch.randn(10, generator=generator),
        }
        incoming = claim.directory / "incoming"
        incoming.mkdir()
        (incoming / "weights.safetensors").write_bytes(safeload.serialize_weights(state, {"epoch": str(EPOCHS)}))
        runner = pods.PodRunner(vm_api, claim.namespace)
        runner.create(_dataplane_pod("verify", guest.node_name(2), claim.name, VERIFY, str(EPOCHS)))
        runner.create(_dataplane_pod("publish", guest.node_name(1), claim.name, PUBLISH))
        names = ("publish", "verify")
        done = {n: runner.wait(n, lambda p: p.status.phase in pods.DONE, 900, f"{n} done") for n in names}
        results = {n: pods.PodResult(p.status.phase, runner.logs(n), None) for n, p in done.items()}
        nodes = {n: p.spec.node_name for n, p in done.items()}
        yield Handoff(claim, state, results["publish"], results["verify"], nodes, runner)


def test_a_checkpoint_published_on_one_vm_node_is_verified_on_the_other_over_nfs(handoff: Handoff) -> None:
    assert handoff.nodes == {"publish": guest.node_name(1), "verify": guest.node_name(2)}
    assert handoff.publisher.phase == "Succeeded", handoff.publisher.logs
    assert handoff.verifier.phase == "Succeeded", handoff.verifier.logs
    mount = handoff.verifier.logs.splitlines()[0].split()
    assert mount[2] == "nfs4" and "hard" in mount[3].split(","), mount
    manifest = checkpoint.require_manifest(str(handoff.claim.directory / "checkpoints" / "latest.json"))
    assert manifest.epoch == EPOCHS
    expected = f"verified epoch {EPOCHS} {manifest.weights.name} {manifest.weights.size} bytes"
    assert expected in handoff.verifier.logs


def test_the_weights_published_over_nfs_load_with_test_resnets_loader_unchanged(handoff: Handoff) -> None:
    manifest = checkpoint.require_manifest(str(handoff.claim.directory / "checkpoints" / "latest.json"))

    tensors, metadata = safeload.weights_from_buffer(checkpoint.read_verified(manifest, manifest.weights), "weights")

    assert metadata == {"epoch": str(EPOCHS)}
    assert sorted(tensors) == sorted(handoff.state)
    for name, tensor in handoff.state.items():
        assert tensors[name].dtype == tensor.dtype and bool((tensors[name] == tensor).all()), name


def test_after_three_publishes_only_the_last_epochs_files_and_the_manifest_stay(handoff: Handoff) -> None:
    names = sorted(p.name for p in (handoff.claim.directory / "checkpoints").iterdir())

    assert len(names) == 3 and names[0].startswith(f"epoch-{EPOCHS:04d}-"), names
    assert names[1].startswith(f"epoch-{EPOCHS:04d}-") and names[2] == "latest.json", names


def test_weights_changed_on_the_server_are_refused_by_a_new_reader_on_the_vm_that_wrote_them(handoff: Handoff) -> None:
    manifest = checkpoint.require_manifest(str(handoff.claim.directory / "checkpoints" / "latest.json"))
    weights = handoff.claim.directory / "checkpoints" / manifest.weights.name
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.chmod(0o644)
    weights.write_bytes(bytes(data))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**10))  # a changed file to the client's cache

    again = _dataplane_pod("verify-again", guest.node_name(1), handoff.claim.name, VERIFY, str(EPOCHS))
    result = handoff.runner.run(again, 600)  # on the kernel whose page cache held the bytes it wrote

    assert result.phase == "Failed", result.logs
    assert f"{manifest.weights.name}" in result.logs and "blake3" in result.logs.lower(), result.logs
