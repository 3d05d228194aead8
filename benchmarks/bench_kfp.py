"""How much of a real run's time is KFP's own (root): the pipeline with tiny settings next to an empty pipeline of the
same DAG shape, on the real KFP 2.17.0 backend on the real node (``make bench-kfp``).

Both runs go through the same backend one after the other, each on its own pre-bound static hostPath volume that
create-volume claims and delete-volume releases: the tiny run is ``sharedvol submit --wait`` (1 epoch of ResNet-18 on
64 generated 32 x 32 images, CPU); the empty one has the same six tasks (create-volume, four steps mounting the claim
that do nothing, delete-volume in its condition). Reported: each run's wall time (KFP's created_at -> finished_at),
each task's (the API's start/end), and the steps' own compute as their summaries record it (train-resnet's and
test-resnet's ``wall_time_s``). Goal (issue 22): (tiny wall - steps' compute) <= 1.15 x the empty run's wall.

No ``from __future__ import annotations`` here: KFP reads the components' annotations as objects.

Uses the backend of ``make kfp-up`` when ``.kfp/kfp.env`` names one that answers, else starts one (and the node) in a
temporary directory and stops it.
"""

import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from rig import cluster as cp
from rig.images import STEP_IMAGE

TINY = ["--image", STEP_IMAGE, "--gpus", "0", "--device", "cpu", "--batch-size", "16", "--num-workers", "0",
        "--volume-size", "1Gi", "--timeout", "1200", "--epochs", "1", "--data-source", "synthetic:64:32"]  # fmt: skip


def backend(tmp: Path) -> tuple[dict[str, str], list[str]]:
    """kfp.env of a running backend, and the command that stops the one started here ([] when reused)."""
    env_file = cp.REPO / ".kfp" / "kfp.env"
    if env_file.exists():
        env = cp.read_env(env_file)
        try:
            if requests.get(f"{env['KFP_HOST']}/apis/v2beta1/healthz", timeout=5).ok:
                return env, []
        except requests.RequestException:
            pass
    real = [sys.executable, "-m", "rig.kfp"]
    dirs = ["--dir", str(tmp / "kfp")]
    subprocess.run([*real, "up", *dirs, "--node-dir", str(tmp / "node")], check=True, cwd=cp.REPO)
    return cp.read_env(tmp / "kfp" / "kfp.env"), [*real, "down", *dirs]


def static_pv(env: dict[str, str], directory: Path) -> str:
    """A Retain hostPath PV on ``directory`` (writable by the steps' uid 1000)."""
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    name = f"bench-kfp-{uuid.uuid4().hex[:6]}"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(directory), "type": "Directory"},
        },
    }
    cp.kubectl(cp.binary_dir(), Path(env["KUBECONFIG"]), "apply", "-f", "-", input=json.dumps(pv))
    return name


def empty_pipeline(pv: str, path: Path) -> Path:
    """The pipeline's DAG with steps that do nothing: create-volume, four steps on the claim, delete-volume."""
    from kfp import compiler, dsl, kubernetes

    # One component per step, named as the pipeline's: KFP keys a run's tasks by their component's name.
    @dsl.component(base_image=STEP_IMAGE, install_kfp_package=False)
    def prepare_data() -> None:
        """Does nothing."""

    @dsl.component(base_image=STEP_IMAGE, install_kfp_package=False)
    def train_resnet() -> None:
        """Does nothing."""

    @dsl.component(base_image=STEP_IMAGE, install_kfp_package=False)
    def test_resnet() -> None:
        """Does nothing."""

    @dsl.component(base_image=STEP_IMAGE, install_kfp_package=False)
    def produce_metrics() -> None:
        """Does nothing."""

    @dsl.pipeline(name="sharedvol-bench-empty")
    def empty(keep_volume: bool = False) -> None:
        create = kubernetes.CreatePVC(
            access_modes=["ReadWriteMany"], size="1Gi", pvc_name_suffix="-bench", storage_class_name="", volume_name=pv
        ).set_display_name("create-volume")
        previous = create
        for step in (prepare_data, train_resnet, test_resnet, produce_metrics):
            task = step().set_caching_options(False).after(previous)
            kubernetes.mount_pvc(task, pvc_name=create.outputs["name"], mount_path="/mnt/shared")
            previous = task
        with dsl.If(keep_volume == False, name="unless-keep-volume"):  # noqa: E712 (a pipeline condition)
            kubernetes.DeletePVC(pvc_name=create.outputs["name"]).set_display_name("delete-volume").after(previous)

    compiler.Compiler().compile(empty, str(path))
    return path


def run_times(host: str, run_id: str) -> dict[str, Any]:
    """The run's state and wall time, and each task's, from KFP's API."""
    run = requests.get(f"{host}/apis/v2beta1/runs/{run_id}", timeout=30).json()

    def seconds(item: dict[str, Any], start: str, end: str) -> float:
        a, b = item.get(start), item.get(end)
        if not a or not b or b.startswith("1970"):
            return 0.0
        return (
            datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00"))
        ).total_seconds()

    tasks = {
        t["display_name"]: seconds(t, "start_time", "end_time")
        for t in run.get("run_details", {}).get("task_details", [])
        if not t["display_name"].startswith(("root", "executor", "sharedvol-bench", "resnet18"))
    }
    return {"state": run["state"], "wall": seconds(run, "created_at", "finished_at"), "tasks": tasks}


def main() -> int:
    if os.geteuid() != 0:
        print("bench-kfp: the real node needs root: run it as root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="sharedvol-bench-kfp-") as tmp_name:
        tmp = Path(tmp_name)
        env, stop = backend(tmp)
        host = env["KFP_HOST"]
        try:
            tiny_dir = tmp / "tiny-volume"
            out = subprocess.run(
                [sys.executable, "-m", "pipelines", "submit", "--host", host, "--wait", "--run-name", "bench-tiny",
                 "--static-pv", static_pv(env, tiny_dir), "--storage-class", "", *TINY],
                capture_output=True, text=True, check=False, cwd=cp.REPO,
                env={**os.environ, "PYTHONPATH": str(cp.REPO)},
            )  # fmt: skip
            if out.returncode != 0:
                raise SystemExit(f"bench-kfp: the tiny run failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
            tiny_id = out.stdout.split("#/runs/details/")[-1].split()[0]
            from kfp import client

            kfp = client.Client(host=host)
            yaml = empty_pipeline(static_pv(env, tmp / "empty-volume"), tmp / "empty.yaml")
            empty_id = kfp.create_run_from_pipeline_package(str(yaml), {}, run_name="bench-empty").run_id
            kfp.wait_for_run_completion(empty_id, timeout=1200)
            tiny, empty = run_times(host, tiny_id), run_times(host, empty_id)
            [summary] = tiny_dir.glob("runs/*/train/summary.json")
            [evaluation] = tiny_dir.glob("runs/*/eval/eval_result.json")
            compute = json.loads(summary.read_text())["wall_time_s"] + json.loads(evaluation.read_text())["wall_time_s"]
        finally:
            if stop:
                subprocess.run(stop, check=False, cwd=cp.REPO)
    print(machine.describe())
    names = list(empty["tasks"])
    rows = [[n, f"{tiny['tasks'].get(n, 0):.1f} s", f"{empty['tasks'].get(n, 0):.1f} s"] for n in names]
    rows.append(["run wall time (created -> finished)", f"{tiny['wall']:.1f} s", f"{empty['wall']:.1f} s"])
    rows.append(["steps' own compute (train + test summaries)", f"{compute:.1f} s", "0 s"])
    machine.table(["", f"tiny pipeline ({tiny['state']})", f"empty DAG ({empty['state']})"], rows)
    ratio = (tiny["wall"] - compute) / empty["wall"] if empty["wall"] else float("inf")
    overhead = tiny["wall"] - compute
    print(f"\nthe tiny run beside its steps' compute: {overhead:.1f} s = {ratio:.2f} x the empty DAG's (goal <= 1.15)")
    return 0 if tiny["state"] == empty["state"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
