"""The KFP 2.17.0 UI on the real backend: upstream's node server (built by ``scripts/kfp/ui-build.sh``) on loopback.

It is wired as a Kubeflow deployment wires it, with this backend's processes in place of the Services:

- the API server (``ML_PIPELINE_SERVICE_*``); ML Metadata's gRPC-web endpoint (``METADATA_ENVOY_SERVICE_*``), to which
  the server forwards the browser's ``/ml_metadata.MetadataStoreService/<Method>`` calls unchanged, as to envoy;
- MinIO (``MINIO_*``): v2 artifacts carry the launcher's in-cluster endpoint (``minio-service.kubeflow:9000``) in
  their provider info, which upstream's ``MINIO_ENDPOINT_REWRITE`` maps to the MinIO process on this machine;
- Kubernetes, for pod logs and the artifact secret: a kubeconfig of its own ServiceAccount ``ml-pipeline-ui``, whose
  Role grants only that (pods and their logs, the pods' events, the workflows, the one artifact secret).

Upstream's server listens on every interface; ``ui_loopback.cjs``, preloaded, binds it to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rig import cluster as cp
from rig.kfp import config as kc

BUILD = cp.REPO / "scripts" / "kfp" / "ui-build.sh"
LOOPBACK = Path(__file__).with_name("ui_loopback.cjs")
SERVICE_ACCOUNT = "ml-pipeline-ui"


def ui_dir(run: Any) -> Path:
    """The cached UI build (built when missing; SHAREDVOL_KFP_UI skips the check). ``run``: the script runner."""
    env = os.environ.get("SHAREDVOL_KFP_UI")
    return Path(env) if env else Path(run(BUILD))


def rbac_objects() -> list[dict[str, Any]]:
    """The UI server's ServiceAccount and a Role with only what its handlers read."""
    meta = {"name": SERVICE_ACCOUNT, "namespace": kc.NAMESPACE}
    rules = [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [kc.ARTIFACT_SECRET], "verbs": ["get"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]},
    ]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": kc.NAMESPACE}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        binding,
    ]


def kubeconfig(admin_view: dict[str, Any], token: str, path: Path) -> Path:
    """A kubeconfig of the admin's cluster (``kubectl config view --raw --minify -o json``) with ``token``."""
    [cluster] = admin_view["clusters"]
    cp.write_kubeconfig(path, cluster["cluster"]["server"], token, None, SERVICE_ACCOUNT)
    config = json.loads(path.read_text())
    config["clusters"][0]["cluster"] = cluster["cluster"]  # the admin's CA (or its skip-verify) as it is
    path.write_text(json.dumps(config, indent=2))
    return path


def env(ports: kc.Ports, kubeconfig_path: Path) -> dict[str, str]:
    """The UI server's environment (what KFP's ml-pipeline-ui Deployment sets, for this machine's processes)."""
    return {
        "ML_PIPELINE_SERVICE_HOST": "127.0.0.1",
        "ML_PIPELINE_SERVICE_PORT": str(ports.api_http),
        "METADATA_ENVOY_SERVICE_SERVICE_HOST": "127.0.0.1",
        "METADATA_ENVOY_SERVICE_SERVICE_PORT": str(ports.mlmd_web),
        "MINIO_HOST": "127.0.0.1",
        "MINIO_PORT": str(ports.minio),
        "MINIO_NAMESPACE": "",  # else the server asks for MINIO_HOST.MINIO_NAMESPACE
        "MINIO_ACCESS_KEY": kc.ACCESS_KEY,
        "MINIO_SECRET_KEY": kc.SECRET_KEY,
        "MINIO_ENDPOINT_REWRITE": f"minio-service.{kc.NAMESPACE}:9000=http://127.0.0.1:{ports.minio}",
        "FRONTEND_SERVER_NAMESPACE": kc.NAMESPACE,
        # as KFP 2.17's ml-pipeline-ui sets it (its ARGO_KEYFORMAT left at the server's default, as there): a
        # deleted pod's log is then looked for in Argo's archive, then (by the page) in KFP's executor-logs artifact
        "ARGO_ARCHIVE_LOGS": "true",
        "KUBECONFIG": str(kubeconfig_path),
        "DISABLE_GKE_METADATA": "true",
        "NODE_ENV": "production",
    }


def command(build: Path, port: int) -> list[str]:
    """The node command that serves ``build`` on 127.0.0.1:``port``."""
    node = build / "node" / "bin" / "node"
    server = build / "frontend" / "server" / "dist" / "server.js"
    return [str(node), "--require", str(LOOPBACK), str(server), str(build / "frontend" / "build"), str(port)]


def start(backend: Any) -> None:
    """Start the UI server of ``backend`` (a :class:`~rig.kfp.backend.KfpBackend` whose other
    processes run) and wait until it serves its page.
    """
    ports = backend.ports
    items = rbac_objects()
    backend.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    token = backend.kubectl("create", "token", SERVICE_ACCOUNT, "-n", kc.NAMESPACE, "--duration=24h").stdout.strip()
    view = json.loads(backend.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config = kubeconfig(view, token, backend.workdir / "ui.kubeconfig")
    backend._spawn("ui", command(backend.ui_build, ports.ui), exe="", env=env(ports, config))
    backend._wait_http("ui", f"{backend.ui_url}/")
