"""The steps' checkpoint handoff on a claim of sharedvol-nfs, through the VM's kernel NFS client: one pod on the VM
node publishes three epochs with train-resnet's publish (steps.checkpoint), a second pod there waits for the commit
point and verifies what it names with test-resnet's reader, and the published weights load with test-resnet's
loader. The pods run the data-plane image (sharedvol-dataplane: the project without torch), because the step image
does not fit the VM (BENCHMARKS.md, "The step image in the VM node"); the loader with torch runs here, on the
server's disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rig import images
from rig.vm import guest
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
    nodes: set[str]
    runner: pods.PodRunner


def _dataplane_pod(name: str, claim: str, code: str, *args: str) -> dict[str, Any]:
    return pods.step_pod(name, ["-c", code, *args], claim=claim, image=images.DATAPLANE_IMAGE)


@pytest.fixture(scope="module")
def handoff(nfs_installed: None, vm_api: Any) -> Iterator[Handoff]:
    """Real safetensors weights (torch, here) put on a claim of sharedvol-nfs through the server's disk, then the
    publishing and the verifying pod started at once on the VM node."""
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
        runner.create(_dataplane_pod("verify", claim.name, VERIFY, str(EPOCHS)))
        runner.create(_dataplane_pod("publish", claim.name, PUBLISH))
        names = ("publish", "verify")
        done = {n: runner.wait(n, lambda p: p.status.phase in pods.DONE, 900, f"{n} done") for n in names}
        results = {n: pods.PodResult(p.status.phase, runner.logs(n), None) for n, p in done.items()}
        nodes = {p.spec.node_name for p in done.values()}
        yield Handoff(claim, state, results["publish"], results["verify"], nodes, runner)


def test_a_checkpoint_published_by_a_pod_on_the_vm_is_verified_by_another_pod_there_over_nfs(handoff: Handoff) -> None:
    assert handoff.nodes == {guest.VM_NODE_NAME}
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


def test_weights_changed_on_the_server_after_publishing_are_refused_by_a_new_reader_on_the_vm(handoff: Handoff) -> None:
    manifest = checkpoint.require_manifest(str(handoff.claim.directory / "checkpoints" / "latest.json"))
    weights = handoff.claim.directory / "checkpoints" / manifest.weights.name
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.chmod(0o644)
    weights.write_bytes(bytes(data))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**10))  # a changed file to the client's cache

    result = handoff.runner.run(_dataplane_pod("verify-again", handoff.claim.name, VERIFY, str(EPOCHS)), 600)

    assert result.phase == "Failed", result.logs
    assert f"{manifest.weights.name}" in result.logs and "blake3" in result.logs.lower(), result.logs
