"""`sharedvol serve` under faults and hostile input: retries, PVs it did not make, its health, its defaults."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from rig import cluster as cp
from rig import kwait
from rig.paths import REPO
from storage import specs
from tests.controlplane.serving import PROVISIONER, Service, fallback_class
from tests.objects import ClusterObjects


def _bound(api: Any, namespace: str, name: str, timeout: float = 90) -> Any:
    return kwait.claim_phase(client.CoreV1Api(api), namespace, name, timeout=timeout)


def _event(api: Any, namespace: str, name: str, reason: str, timeout: float = 90) -> Any:
    return kwait.event(client.CoreV1Api(api), namespace, reason, name, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int, svc: Service, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """GET /healthz once the service listens (it answers from the start, before its first re-check)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except (urllib.error.URLError, ConnectionError) as e:
            assert svc.proc is not None and svc.proc.poll() is None, svc.output()
            if time.monotonic() > deadline:
                raise AssertionError(f"/healthz did not answer in {timeout:.0f} s: {e}") from e
        # A process that has not bound its port yet has no event to watch: a short bounded back-off is the way
        # (short, so that the first answer is the one right after the port opens)
        time.sleep(0.02)


def test_a_failed_provision_is_retried_and_binds_once_its_class_is_fixed(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    storage = client.StorageV1Api(api)
    serve()
    broken = fallback_class(cluster_objects, on_delete="shred")  # an onDelete the service refuses
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(
        namespace, specs.rwx_claim("retry", namespace, "1Gi", broken)
    )
    failed = _event(api, namespace, "retry", "ProvisioningFailed")
    assert "onDelete 'shred' is unknown" in failed.message
    # The class is fixed (parameters are immutable: delete it and make it again); nothing touches the claim.
    storage.delete_storage_class(broken)
    body = {
        "metadata": {"name": broken},
        "provisioner": PROVISIONER,
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Delete",
        "parameters": {"basePath": "/var/lib/sharedvol", "onDelete": "delete"},
    }
    storage.create_storage_class(body)
    claim = _bound(api, namespace, "retry")
    cluster_objects.track_pv(claim.spec.volume_name)
    assert claim.spec.volume_name.startswith("pvc-")


def _released_pv(cluster_objects: ClusterObjects, name: str, host_path: str, claim_uid: str, namespace: str) -> None:
    volume = specs.StaticVolume(
        pv_name=name,
        claim_namespace=namespace,
        claim_name="gone",
        size="1Gi",
        storage_class="",
        host_path=host_path,
        reclaim_policy="Delete",
        claim_uid=claim_uid,
        provisioner=PROVISIONER,
    )
    cluster_objects.pv(specs.static_pv(volume))


def test_a_released_pv_the_service_did_not_make_is_never_reclaimed_and_its_data_stays(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    svc = serve()
    important = svc.root / "important"
    important.mkdir(parents=True)
    (important / "keep.txt").write_text("precious")
    # 1: hand-made, annotated as ours, hostPath /important (outside the base path)
    uid1 = str(uuid.uuid4())
    hand_made = f"hand-made-{uid1[:8]}"
    _released_pv(cluster_objects, hand_made, "/important", uid1, namespace)
    # 2: named and placed exactly as the service would, but the directory is a symlink to /important
    uid2 = str(uuid.uuid4())
    planted = f"pvc-{uid2}"
    path = f"/var/lib/sharedvol/{namespace}-gone-{uid2[:8]}"
    svc.node_dir(path).symlink_to(important)
    _released_pv(cluster_objects, planted, path, uid2, namespace)
    core = client.CoreV1Api(api)
    for pv in (hand_made, planted):
        refused = kwait.event(core, "default", "ReclaimRefused", pv, timeout=90)
        assert "sharedvol serve leaves it alone" in refused.message
        assert core.read_persistent_volume(pv).metadata.deletion_timestamp is None
    assert (important / "keep.txt").read_text() == "precious"
    assert svc.node_dir(path).is_symlink()


def test_serve_by_default_logs_json_serves_healthz_and_posts_provisioning_failed(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    port = _free_port()
    svc = serve(env={"SHAREDVOL_HEALTH_PORT": str(port)}, defaults=True)  # no --health-port 0, no --text-logs
    broken = fallback_class(cluster_objects, basePath="/etc")
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(
        namespace, specs.rwx_claim("bad", namespace, "1Gi", broken)
    )
    failed = _event(api, namespace, "bad", "ProvisioningFailed")
    assert failed.type == "Warning" and "host path '/etc' is a system directory" in failed.message
    status, body = _healthz(port, svc)
    assert status == 200 and body["claims"] == "ok", body
    lines = [line for line in svc.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a JSON record
    assert any("host path '/etc' is a system directory" in r.get("message", "") for r in records)


def test_without_rights_to_list_claims_healthz_says_503_and_why_from_its_first_answer(
    cluster: cp.ClusterHandle, namespace: str, serve: Callable[..., Service]
) -> None:
    port = _free_port()
    nobody = cluster.service_account_kubeconfig(namespace, "nobody")
    svc = serve("--health-port", str(port), kubeconfig=nobody, defaults=True)
    status, body = _healthz(port, svc)
    assert status == 503 and body["claims"] == "failing", body
    assert "cannot list claims" in body["detail"] and "Forbidden" in body["detail"]


SERVE = (sys.executable, "-m", "pipelines", "serve", "--kubeconfig")


def test_serve_with_its_health_port_taken_says_so_in_one_line(cluster: cp.ClusterHandle) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*SERVE, str(cluster.kubeconfig), "--health-port", str(port), "--text-logs"],
            cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sharedvol serve: error: cannot serve /healthz on port {port}")
    assert "pick a free port with --health-port" in last
