"""What a skeptical admin types: bad input, odd clusters and lost connections get one line and exit 2;
the flags the docs promise (--existing, --dry-run, --nfs with IPv6, doctor --json) do what they say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from rig import cluster as cp
from rig import kwait
from rig.paths import REPO
from storage import errors, kube, specs, wait
from tests import objects
from tests.controlplane.serving import SharedvolCli
from tests.objects import ClusterObjects


def _one_line(out: subprocess.CompletedProcess[str], command: str) -> str:
    """The one error line (the last line; lines before it are progress, none a warning or a traceback)."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(f"sharedvol {command}: error: "), out.stderr
    assert not any(w in line for line in lines[:-1] for w in ("error", "WARNING", "Traceback")), out.stderr
    return lines[-1]


def _claims(api: Any, namespace: str) -> list[str]:
    return [c.metadata.name for c in client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace).items]


def test_bad_kubeconfigs_and_a_wrong_server_are_one_line_each(
    sharedvol: SharedvolCli, namespace: str, tmp_path: Path, cluster: cp.ClusterHandle
) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_text("{{{ this is: not: yaml ]]]")
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)) * 4)
    wrong_port = tmp_path / "wrong-port"
    text = cluster.kubeconfig.read_text()
    port = cluster.server.rsplit(":", 1)[1]
    wrong_port.write_text(text.replace(f":{port}", ":1"))
    for kubeconfig, message in (
        (garbage, "no usable kubeconfig"),
        (binary, "no usable kubeconfig"),
        (tmp_path / "missing", "no usable kubeconfig"),
        (wrong_port, "no answer from https://127.0.0.1:1"),
    ):
        for command in (["provision", "x", "-n", namespace, "--static"], ["doctor"], ["release", "x", "-n", namespace]):
            line = _one_line(sharedvol(*command, kubeconfig=kubeconfig), command[0])
            assert message in line, (kubeconfig.name, command, line)


def test_timeouts_that_are_not_a_positive_number_of_seconds_up_to_a_day_are_refused_before_anything_is_made(
    api: Any, sharedvol: SharedvolCli, namespace: str
) -> None:
    for value in ("0", "-5", "inf", "nan", "86401"):  # inf: the claim was made, then a traceback (held-out test)
        line = _one_line(sharedvol("provision", "x", "-n", namespace, "--static", "--timeout", value), "provision")
        assert f"--timeout {value} is not between 0 and 86400 seconds (a day)" in line
    assert _claims(api, namespace) == []


def test_doctor_with_a_missing_or_invalid_namespace_says_so_and_exits_2(sharedvol: SharedvolCli) -> None:
    assert "namespace 'no-such-ns' does not exist" in _one_line(sharedvol("doctor", "-n", "no-such-ns"), "doctor")
    assert "namespace 'Bad_NS' is not a valid namespace name" in _one_line(
        sharedvol("doctor", "-n", "Bad_NS"), "doctor"
    )


def test_sizes_are_read_by_the_kubernetes_parser_and_below_1mi_is_refused(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    for size, message in (
        ("500m", "size '500m' is 0.5 bytes, below the minimum of 1Mi"),
        ("1Ki", "size '1Ki' is 1024 bytes, below the minimum of 1Mi"),
        ("12 apples", "size '12 apples' is not a Kubernetes quantity"),
    ):
        assert message in _one_line(sharedvol("provision", "x", "-n", namespace, "--size", size), "provision")
    cluster_objects.track_pv(specs.static_pv_name(namespace, "big"))
    out = sharedvol("provision", "big", "-n", namespace, "--size", "1e9", "--static", "--no-prepare")
    assert out.returncode == 0, out.stderr
    assert client.CoreV1Api(api).read_namespaced_persistent_volume_claim("big", namespace).status.phase == "Bound"


def test_system_directories_are_refused_as_host_path(api: Any, sharedvol: SharedvolCli, namespace: str) -> None:
    for path in ("/etc", "/etc/sharedvol", "/var/lib/kubelet/x", "/usr", "/var"):
        line = _one_line(sharedvol("provision", "x", "-n", namespace, "--static", "--host-path", path), "provision")
        assert f"host path '{path}' is" in line and "use a directory of its own" in line
    assert _claims(api, namespace) == []


def test_existing_uses_a_bound_rwx_claim_and_refuses_a_pending_or_rwo_one(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "mine"))
    assert sharedvol("provision", "mine", "-n", namespace, "--static", "--no-prepare").returncode == 0
    out = sharedvol("provision", "mine", "-n", namespace, "--existing")
    assert out.returncode == 0, out.stderr
    assert f"claim {namespace}/mine is Bound to PersistentVolume sharedvol.{namespace}.mine" in out.stdout
    core = client.CoreV1Api(api)
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    core.create_namespaced_persistent_volume_claim(namespace, specs.rwx_claim("waiting", namespace, "1Gi", nfs))
    rwo = specs.rwx_claim("rwo", namespace, "1Gi", nfs)
    rwo["spec"]["accessModes"] = ["ReadWriteOnce"]
    core.create_namespaced_persistent_volume_claim(namespace, rwo)
    assert f"claim {namespace}/waiting exists but is Pending, not Bound" in _one_line(
        sharedvol("provision", "waiting", "-n", namespace, "--existing"), "provision"
    )
    assert "not ReadWriteMany" in _one_line(sharedvol("provision", "rwo", "-n", namespace, "--existing"), "provision")
    assert f"claim {namespace}/none does not exist" in _one_line(
        sharedvol("provision", "none", "-n", namespace, "--existing"), "provision"
    )
    # the hint of a class conflict names the flag, and the flag exists
    line = _one_line(sharedvol("provision", "mine", "-n", namespace, "--class", nfs), "provision")
    assert f"sharedvol provision mine -n {namespace} --existing" in line


def test_dry_run_prints_the_objects_and_creates_nothing(api: Any, sharedvol: SharedvolCli, namespace: str) -> None:
    out = sharedvol("provision", "dry", "-n", namespace, "--static", "--dry-run")
    assert out.returncode == 0, out.stderr
    objects = json.loads(out.stdout[out.stdout.index("[") :])
    assert [o["kind"] for o in objects] == ["PersistentVolume", "PersistentVolumeClaim", "Pod"]
    assert _claims(api, namespace) == []
    assert client.CoreV1Api(api).list_namespaced_pod(namespace).items == []
    with pytest.raises(client.ApiException) as e:
        client.CoreV1Api(api).read_persistent_volume(specs.static_pv_name(namespace, "dry"))
    assert e.value.status == 404


def test_nfs_exports_by_ipv4_ipv6_and_host_name_bind(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    for name, export, server in (
        ("v4", "10.0.0.5:/exports/kfp", "10.0.0.5"),
        ("v6", "[fd00::5]:/exports/kfp", "fd00::5"),
        ("dns", "nfs.example.com:/kfp", "nfs.example.com"),
    ):
        cluster_objects.track_pv(specs.static_pv_name(namespace, name))
        out = sharedvol("provision", name, "-n", namespace, "--nfs", export)
        assert out.returncode == 0, out.stderr
        pv = core.read_persistent_volume(core.read_namespaced_persistent_volume_claim(name, namespace).spec.volume_name)
        assert (pv.spec.nfs.server, pv.spec.nfs.path, pv.status.phase) == (server, export.rsplit(":", 1)[1], "Bound")
    assert "IPv6 address without brackets" in _one_line(
        sharedvol("provision", "bad", "-n", namespace, "--nfs", "fd00::5:/exports"), "provision"
    )


def test_release_leaves_a_pv_sharedvol_did_not_make_alone(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    theirs = specs.static_pv(
        specs.StaticVolume(f"theirs-{namespace}", namespace, "theirs", "1Gi", host_path="/data/theirs")
    )
    theirs["metadata"]["labels"] = {}
    cluster_objects.pv(theirs)
    core.create_namespaced_persistent_volume_claim(
        namespace, specs.rwx_claim("theirs", namespace, "1Gi", "", volume_name=f"theirs-{namespace}")
    )
    kwait.claim_phase(core, namespace, "theirs")
    out = sharedvol("release", "theirs", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert f"PersistentVolume theirs-{namespace}: left alone (not made by sharedvol)" in out.stdout
    pv = core.read_persistent_volume(f"theirs-{namespace}")
    assert pv.metadata.deletion_timestamp is None


def test_apply_fails_early_when_the_claims_own_event_says_it_will_not_bind(api: Any, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(namespace, specs.rwx_claim("lost", namespace, "1Gi", ""))
    started = time.monotonic()
    with pytest.raises(errors.BindError, match="will not bind: FailedBinding"):
        wait.wait_bound(api, namespace, "lost", timeout=300)
    assert time.monotonic() - started < 120  # far from the 300 s deadline


def test_doctor_json_lists_classes_strategy_pending_claims_and_finished_run_volumes(
    api: Any, sharedvol: SharedvolCli, namespace: str, local_path_class: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(
        namespace, specs.rwx_claim("stuck", namespace, "3Gi", local_path_class)
    )
    cluster_objects.track_pv(specs.static_pv_name(namespace, "run-1"))
    assert sharedvol("provision", "run-1", "-n", namespace, "--static", "--no-prepare").returncode == 0
    core.patch_namespaced_persistent_volume_claim(
        "run-1", namespace, {"metadata": {"annotations": {"sharedvol.io/pipeline": "resnet18-cifar10"}}}
    )
    out = sharedvol("doctor", "-n", namespace, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert local_path_class in [c["name"] for c in report["classes"]]
    assert report["strategy"] == "static"
    assert [(c["name"], c["cause"]) for c in report["pending_claims"]] == [("stuck", "rwx-unsupported")]
    [left] = report["finished_run_volumes"]
    assert (left["name"], left["fix"]) == ("run-1", f"sharedvol release run-1 -n {namespace}")


def test_doctor_lists_a_deleted_claim_only_finished_pods_hold_and_its_fix_frees_it(
    api: Any, cluster: cp.ClusterHandle, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    cluster_objects.track_pv(specs.static_pv_name(namespace, "run-2"))
    assert sharedvol("provision", "run-2", "-n", namespace, "--static", "--no-prepare").returncode == 0
    pod = {
        "metadata": {"name": "train-resnet-abc"},
        "spec": {
            "nodeName": cluster.node_names[0],
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "run-2"}}],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    core.delete_namespaced_persistent_volume_claim("run-2", namespace)  # what KFP's DeletePVC does at the run's end

    def doctor() -> list[dict[str, Any]]:
        out = sharedvol("doctor", "-n", namespace, "--json")
        assert out.returncode == 0, out.stderr
        return list(json.loads(out.stdout)["deleted_claims_held_by_finished_pods"])

    kwait.until(
        core.list_namespaced_pod,
        lambda p: p.status.phase == "Running",
        namespace,
        timeout=60,
        what="the pod Running",  # kwok sets Running once: a Succeeded written before that would be overwritten
        **kwait.named("train-resnet-abc"),
    )
    assert doctor() == []  # a pod still running may need it
    core.patch_namespaced_pod_status("train-resnet-abc", namespace, {"status": {"phase": "Succeeded"}})
    kwait.until(
        core.list_namespaced_pod,
        lambda p: p.status.phase == "Succeeded",
        namespace,
        timeout=30,
        what="the pod Succeeded",
        **kwait.named("train-resnet-abc"),
    )
    claim = core.read_namespaced_persistent_volume_claim("run-2", namespace)
    assert claim.metadata.deletion_timestamp is not None  # Terminating: PVC protection counts the finished pod

    [held] = doctor()
    fix = f"kubectl delete pod -n {namespace} train-resnet-abc"
    assert (held["name"], held["pods"], held["fix"]) == ("run-2", ["train-resnet-abc"], fix)
    text = sharedvol("doctor", "-n", namespace)
    assert "Deleted claims that only finished pods hold" in text.stdout and fix in text.stdout

    cluster.kubectl(*fix.split()[1:])
    list_claims = core.list_namespaced_persistent_volume_claim
    what, kind = "claim run-2", "PersistentVolumeClaims"
    assert kube.wait_gone(
        list_claims, namespace, name="run-2", uid=claim.metadata.uid, what=what, kind=kind, timeout=60
    )


PROVISION = (sys.executable, "-m", "pipelines", "provision")


def test_an_api_server_killed_while_provision_waits_is_one_line(tmp_path: Path) -> None:
    with cp.running(nodes=1, workdir=tmp_path / "plane") as plane:
        api = config.new_client_from_config(str(plane.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "lost"}})
        client.StorageV1Api(api).create_storage_class(objects.nfs_class("nfs"))
        proc = subprocess.Popen(
            [
                *PROVISION,
                "x",
                "-n",
                "lost",
                "--class",
                "nfs",
                "--timeout",
                "300",
                "--kubeconfig",
                str(plane.kubeconfig),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        kwait.until(core.list_namespaced_persistent_volume_claim, lambda c: True, "lost", **kwait.named("x"))
        [apiserver] = [p for p in plane.processes if p.name == "kube-apiserver"]
        os.killpg(apiserver.popen.pid, signal.SIGKILL)
        apiserver.popen.wait()
        out, err = proc.communicate(timeout=120)
    line = _one_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), "provision")
    assert "no answer from https://127.0.0.1:" in line


@pytest.mark.parametrize(
    "storage,old",
    [
        ("static", ["--static"]),
        ("nfs:10.0.0.5:/exports/kfp", ["--nfs", "10.0.0.5:/exports/kfp"]),
        ("class:some-rwx-class", ["--class", "some-rwx-class"]),
    ],
)
def test_provision_takes_the_storage_grammar_and_plans_what_the_old_flag_planned(
    api: Any, sharedvol: SharedvolCli, namespace: str, storage: str, old: list[str]
) -> None:
    plans = []
    for how in (["--storage", storage], old):
        out = sharedvol("provision", "same", "-n", namespace, *how, "--no-prepare", "--dry-run")
        plans.append((out.returncode, out.stdout, out.stderr))
    assert plans[0] == plans[1]
    assert _claims(api, namespace) == []


def test_provision_refuses_a_storage_choice_naming_another_claim_in_one_line(
    sharedvol: SharedvolCli, namespace: str
) -> None:
    out = sharedvol("provision", "mine", "-n", namespace, "--storage", "pvc:theirs")
    assert out.returncode == 2
    assert _one_line(out, "provision") == (
        "sharedvol provision: error: --storage pvc:theirs names another claim than 'mine': "
        "name the claim you have: sharedvol provision theirs --storage pvc:theirs"
    )
