"""The workspace variant for real: ``sharedvol submit --workspace`` on KFP 2.17.0's backend on the real node.

KFP makes the run's claim itself (its workspace, ``<workflow>-kfp-workspace``, ReadWriteMany, the class given) and
mounts it at ``/kfp-workspace`` in every step whose inputs name that path; ``sharedvol serve`` provisions it (a
fallback class, WaitForFirstConsumer, on this machine). At the run's end Argo deletes the claim, nothing holds it,
and the service archives the directory as the class says. The run is the package's (journeys.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rig import kwait
from rig.kfp import backend as kb
from rig.kfp import config as kc
from tests.kfp_backend.real.journeys import WorkspaceClass

pytestmark = pytest.mark.timeout(1800)  # the package's runs may be made in the first test's set-up
MADE = r"claim kubeflow/(\S+-kfp-workspace): made (pvc-\S+) \(1Gi\) at \S+:(\S+)"  # the service's log line
STEPS = ["prepare-data", "train-resnet", "test-resnet", "produce-metrics"]


def test_submit_workspace_runs_every_step_to_success_with_no_create_or_delete_volume(
    journeys: dict[str, Any],
) -> None:
    out = journeys["workspace"].check().stdout
    first_success = [out.find(f"  {name}: SUCCEEDED") for name in STEPS]

    assert " SUCCEEDED" in out
    assert -1 not in first_success and first_success == sorted(first_success), out
    assert "create-volume" not in out and "delete-volume" not in out


def test_kfps_workspace_claim_got_its_volume_from_sharedvol_serve_and_every_step_wrote_on_it(
    workspace_class: WorkspaceClass, journeys: dict[str, Any]
) -> None:
    journeys["workspace"].check()
    _, _, directory = _made(workspace_class)
    # the run's end freed it (below): the directory is archived, so look in either
    [run_dir] = [p.parent.parent for p in workspace_class.base.glob(f"*{directory.name}/runs/*/eval/eval_result.json")]

    assert directory.parent == workspace_class.base
    # prepare-data's dataset, train-resnet's summary, test-resnet's evaluation, produce-metrics' files: one volume
    assert (run_dir / "train" / "summary.json").is_file()
    assert any((run_dir / "metrics").iterdir())
    assert any(run_dir.parent.parent.glob("data/*/cifar-10-batches-py/data_batch_1"))


def test_the_workspace_is_freed_when_the_run_ends_and_its_directory_archived_with_every_file(
    kfp_on_node: kb.KfpBackend, workspace_class: WorkspaceClass, journeys: dict[str, Any]
) -> None:
    from kubernetes import client, config

    journeys["workspace"].check()
    claim, volume, directory = _made(workspace_class)
    core = client.CoreV1Api(config.new_client_from_config(str(kfp_on_node.kubeconfig)))
    # Argo deletes the workspace claim at the run's end (volumeClaimGC), and the run's pods, which stay (here:
    # --ttl-after-success 0), do not hold it: the service reclaims the volume as the class says (onDelete: archive)
    kwait.gone(core.list_persistent_volume, volume, timeout=120, what=f"the workspace's volume {volume}")
    claims = json.loads(kfp_on_node.kubectl("get", "pvc", "-n", kc.NAMESPACE, "-o", "json").stdout)["items"]

    assert claim not in {c["metadata"]["name"] for c in claims}
    assert not directory.exists()
    archived = directory.parent / f"archived-{directory.name}"
    assert any(archived.glob("runs/*/eval/eval_result.json"))


def _made(workspace_class: WorkspaceClass) -> tuple[str, str, Path]:
    """The workspace claim, the PV and the directory the service made for it, read from the service's log."""
    made = sorted(set(re.findall(MADE, workspace_class.service.output())))
    assert len(made) == 1, workspace_class.service.output()[-3000:]
    claim, volume, path = made[0]
    return claim, volume, Path(path)
