"""What the real KFP backend is configured with: pure functions, no processes, no cluster.

The backend's servers (PostgreSQL, MinIO, ML Metadata, KFP's api-server and persistence agent, Argo's
workflow-controller) run as processes on the node's machine. Pods reach them the way they reach KFP in a
Kubeflow install, by the in-cluster names KFP's code builds (``ml-pipeline.kubeflow.svc.cluster.local:8887``,
``metadata-grpc-service.kubeflow.svc.cluster.local:8080``, ``minio-service.kubeflow:9000``): each name is a
selector-less Service whose EndpointSlice points at the machine's address and the process's port, and,
as the node runs no cluster DNS, KFP's ``COMPILED_PIPELINE_SPEC_PATCH`` gives every workflow ``hostAliases``
from those names to the Services' cluster IPs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

NAMESPACE = "kubeflow"
BUCKET = "mlpipeline"
ACCESS_KEY = "minio"
SECRET_KEY = "minio123"  # KFP's default object-store credentials; the store listens for this test node only
ARTIFACT_SECRET = "mlpipeline-minio-artifact"
# Where Argo archives each pod's outputs and main log (archiveLogs): KFP 2.17's manifests' keyFormat.
KEY_FORMAT = (
    "private-artifacts/{{workflow.namespace}}/{{workflow.name}}/{{workflow.creationTimestamp.Y}}/"
    "{{workflow.creationTimestamp.m}}/{{workflow.creationTimestamp.d}}/{{pod.name}}"
)
RUNNER_SA = "pipeline-runner"
CLUSTER_DOMAIN = "cluster.local"


@dataclasses.dataclass(frozen=True)
class Images:
    """The local images the workflows' pods use (no registry: imagePullPolicy IfNotPresent)."""

    driver: str = "sharedvol-kfp-driver:2.17.0"
    launcher: str = "sharedvol-kfp-launcher:2.17.0"
    argoexec: str = "sharedvol-argoexec:v4.0.5"


@dataclasses.dataclass(frozen=True)
class Ports:
    """The machine's ports the backend's processes listen on."""

    api_http: int
    api_grpc: int
    mlmd: int
    minio: int
    minio_console: int
    database: int
    mlmd_web: int  # ML Metadata's gRPC-web, what envoy serves in a KFP deployment (the UI server forwards to it)
    ui: int  # the KFP UI's node server


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """One in-cluster name of a backend process: Service ``name`` port ``port`` -> machine port ``target``."""

    name: str
    ports: tuple[tuple[str, int, int], ...]  # (port name, service port, machine port)

    @property
    def hostnames(self) -> list[str]:
        """The names pods use for it: short, namespaced and fully qualified."""
        return [
            f"{self.name}.{NAMESPACE}",
            f"{self.name}.{NAMESPACE}.svc",
            f"{self.name}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}",
        ]


def services(ports: Ports) -> list[ServiceSpec]:
    """The Services KFP's pods address, with the fixed ports KFP's code puts in the pods' arguments."""
    return [
        ServiceSpec("ml-pipeline", (("http", 8888, ports.api_http), ("grpc", 8887, ports.api_grpc))),
        ServiceSpec("metadata-grpc-service", (("grpc-api", 8080, ports.mlmd),)),
        ServiceSpec("minio-service", (("http", 9000, ports.minio),)),
    ]


def service_objects(spec: ServiceSpec, address: str) -> list[dict[str, Any]]:
    """A selector-less Service and the EndpointSlice that points it at ``address`` on the machine."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": NAMESPACE},
        "spec": {"ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in spec.ports]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{spec.name}-machine",
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": spec.name,
                "endpointslice.kubernetes.io/managed-by": "sharedvol.kfp-backend",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": n, "port": t, "protocol": "TCP"} for n, _, t in spec.ports],
    }
    return [service, endpoints]


def spec_patch(aliases: dict[str, list[str]]) -> str:
    """KFP's ``COMPILED_PIPELINE_SPEC_PATCH``: every workflow's pods resolve the backend's names (IP -> names)."""
    host_aliases = [{"ip": ip, "hostnames": names} for ip, names in sorted(aliases.items())]
    return json.dumps({"hostAliases": host_aliases}, separators=(",", ":"))


def launcher_configmap() -> dict[str, Any]:
    """``kfp-launcher``: the pipeline root in MinIO and how the launcher reaches it."""
    providers = {
        "minio": {
            "default": {
                "endpoint": f"minio-service.{NAMESPACE}:9000",
                "region": "minio",
                "disableSSL": True,
                "forcePathStyle": True,
                "credentials": {
                    "fromEnv": False,
                    "secretRef": {
                        "secretName": ARTIFACT_SECRET,
                        "accessKeyKey": "accesskey",
                        "secretKeyKey": "secretkey",
                    },
                },
            }
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kfp-launcher", "namespace": NAMESPACE},
        "data": {"defaultPipelineRoot": f"minio://{BUCKET}/v2/artifacts", "providers": json.dumps(providers)},
    }


def workflow_controller_configmap(images: Images) -> dict[str, Any]:
    """Argo's configuration: KFP 2.17's manifests' (pods' logs archived), local images, no metrics servers on fixed
    ports."""
    executor = {"imagePullPolicy": "IfNotPresent"}
    repository = {
        "archiveLogs": True,
        "s3": {
            "endpoint": f"minio-service.{NAMESPACE}:9000",
            "bucket": BUCKET,
            "insecure": True,
            "keyFormat": KEY_FORMAT,
            "accessKeySecret": {"name": ARTIFACT_SECRET, "key": "accesskey"},
            "secretKeySecret": {"name": ARTIFACT_SECRET, "key": "secretkey"},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "workflow-controller-configmap", "namespace": NAMESPACE},
        "data": {
            "executor": json.dumps(executor),
            "artifactRepository": json.dumps(repository),
            "metricsConfig": json.dumps({"enabled": False}),
            "telemetryConfig": json.dumps({"enabled": False}),
        },
    }


def base_objects(images: Images) -> list[dict[str, Any]]:
    """The namespace, the object-store secret and the two configmaps (KFP's RBAC comes from KFP's manifests)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ARTIFACT_SECRET, "namespace": NAMESPACE},
            "stringData": {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY},
        },
        launcher_configmap(),
        workflow_controller_configmap(images),
    ]


def apiserver_config(database_port: int, minio_port: int) -> dict[str, Any]:
    """The api-server's ``config.json``: KFP's own file's keys with the local MariaDB and MinIO."""
    return {
        "DBConfig": {
            "MySQLConfig": {
                "Host": "127.0.0.1",
                "Port": str(database_port),
                "User": "root",
                "Password": "",
                "DBName": "mlpipeline",
                "GroupConcatMaxLen": "4194304",
            },
            "ConMaxLifeTime": "120s",
        },
        "ObjectStoreConfig": {
            "Host": "127.0.0.1",
            "Port": str(minio_port),
            "Secure": "false",
            "Region": "minio",
            "AccessKey": ACCESS_KEY,
            "SecretAccessKey": SECRET_KEY,
            "BucketName": BUCKET,
            "PipelinePath": "pipelines",
        },
        "DBDriverName": "mysql",
        "ARCHIVE_CONFIG_LOG_FILE_NAME": "main.log",
        "ARCHIVE_CONFIG_LOG_PATH_PREFIX": "/artifacts",
        "InitConnectionTimeout": "2m",
        "DEFAULTPIPELINERUNNERSERVICEACCOUNT": RUNNER_SA,
        "CacheEnabled": "false",
        "CRON_SCHEDULE_TIMEZONE": "UTC",
    }


def apiserver_env(images: Images, patch: str, kubeconfig: str) -> dict[str, str]:
    """Environment of the api-server process (what KFP's Deployment sets, for a process off the cluster)."""
    return {
        "KUBECONFIG": kubeconfig,
        "POD_NAMESPACE": NAMESPACE,
        "V2_DRIVER_IMAGE": images.driver,
        "V2_LAUNCHER_IMAGE": images.launcher,
        "COMPILED_PIPELINE_SPEC_PATCH": patch,
        "CLUSTER_DOMAIN": CLUSTER_DOMAIN,
        "LOG_LEVEL": "info",
        # KFP's v1 visualization server (not run here: this pipeline is v2); the api-server insists on an address.
        "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_HOST": "127.0.0.1",
        "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_PORT": "9",
    }
