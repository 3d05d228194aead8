"""The workspace variant for real: ``sharedvol submit --workspace`` on KFP 2.17.0's backend on the real node.

KFP makes the run's claim itself (its workspace, ``<workflow>-kfp-workspace``, ReadWriteMany, the class given) and
mounts it at ``/kfp-workspace`` in every step whose inputs name that path; ``sharedvol serve`` provisions it (a
fallback class, WaitForFirstConsumer, on this machine). At the run's end Argo deletes the claim, and the run's
finished pods keep it Terminating: ``sharedvol doctor`` lists it, its command frees it, and the service then
archives the directory as the class says. The run is the package's (journeys.py).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rig import kwait
from rig.kfp import backend as kb
from rig.kfp import config as kc
from tests.kfp_backend.real.journeys import WorkspaceClass

pytestmark = pytest.mark.timeout(1800)  # the package's runs may be made in the first test's set-up
STEPS = ["prepare-data", "train-resnet", "test-resnet", "produce-metrics"]


def _workspace_volume(backend: kb.KfpBackend, workspace_class: WorkspaceClass) -> dict[str, Any]:
    volumes = json.loads(backend.kubectl("get", "pv", "-o", "json").stdout)["items"]
    made = [v for v in volumes if v["spec"].get("storageClassName") == workspace_class.name]
    seen = backend.kubectl("get", "pv,pvc,pods", "-A", "-o", "wide").stdout
    assert len(made) == 1, f"{seen}\n{workspace_class.service.output()[-4000:]}"
    return dict(made[0])


def test_submit_workspace_runs_every_step_to_success_with_no_create_or_delete_volume(
    journeys: dict[str, Any],
) -> None:
    out = journeys["workspace"].check().stdout
    first_success = [out.find(f"  {name}: SUCCEEDED") for name in STEPS]

    assert " SUCCEEDED" in out
    assert -1 not in first_success and first_success == sorted(first_success), out
    assert "create-volume" not in out and "delete-volume" not in out


def test_kfps_workspace_claim_is_the_volume_sharedvol_serve_made_and_every_step_wrote_on_it(
    kfp_on_node: kb.KfpBackend, workspace_class: WorkspaceClass, journeys: dict[str, Any]
) -> None:
    journeys["workspace"].check()
    pv = _workspace_volume(kfp_on_node, workspace_class)
    directory = Path(pv["spec"]["hostPath"]["path"])

    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "sharedvol.io/hostpath"
    assert pv["spec"]["claimRef"]["name"].endswith("-kfp-workspace")
    assert pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert directory.parent == workspace_class.base
    # prepare-data's dataset, train-resnet's summary, test-resnet's evaluation, produce-metrics' files: one volume
    [run_dir] = [p.parent.parent for p in directory.glob("runs/*/eval/eval_result.json")]
    assert (run_dir / "train" / "summary.json").is_file()
    assert any((run_dir / "metrics").iterdir())
    assert any(directory.glob("data/*/cifar-10-batches-py/data_batch_1"))


def test_doctor_lists_the_deleted_workspace_claim_held_by_finished_pods_and_its_command_frees_it(
    kfp_on_node: kb.KfpBackend, workspace_class: WorkspaceClass, journeys: dict[str, Any]
) -> None:
    from kubernetes import client, config

    journeys["workspace"].check()
    pv = _workspace_volume(kfp_on_node, workspace_class)
    claim = pv["spec"]["claimRef"]["name"]
    directory = Path(pv["spec"]["hostPath"]["path"])
    env = {**os.environ, "PYTHONPATH": str(kb.REPO)}
    doctor = subprocess.run(
        [sys.executable, "-m", "pipelines", "doctor", "--kubeconfig", str(kfp_on_node.kubeconfig),
         "-n", kc.NAMESPACE, "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stderr
    held = {h["name"]: h for h in json.loads(doctor.stdout)["deleted_claims_held_by_finished_pods"]}

    # Argo deleted the claim at the run's end; the pvc-protection finalizer keeps it for the run's finished pods
    assert claim in held, doctor.stdout
    assert held[claim]["volume"] == pv["metadata"]["name"] and held[claim]["pods"]
    fix = shlex.split(held[claim]["fix"])
    assert fix[:3] == ["kubectl", "delete", "pod"]
    kubectl = str(kfp_on_node.kubectl_bin / "kubectl")
    freed = subprocess.run([kubectl, "--kubeconfig", str(kfp_on_node.kubeconfig), *fix[1:]], capture_output=True,
                           text=True, check=False)  # fmt: skip
    assert freed.returncode == 0, freed.stderr

    core = client.CoreV1Api(config.new_client_from_config(str(kfp_on_node.kubeconfig)))
    kwait.gone(core.list_persistent_volume, pv["metadata"]["name"], timeout=180, what="the workspace's PV")
    archived = directory.parent / f"archived-{directory.name}"  # the class's onDelete: archive
    assert not directory.exists()
    assert any(archived.glob("runs/*/eval/eval_result.json"))
