"""Objects any cluster user can make, that doctor and provision read: a made-up heartbeat Lease, a local-path
ConfigMap of odd JSON. Each changes at most what doctor says; none stops it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from storage import classes, heartbeat
from tests import objects
from tests.controlplane.serving import PROVISIONER, SharedvolCli, fallback_class
from tests.objects import ClusterObjects


@pytest.mark.parametrize("renewed", ["9999-12-31T23:59:59.000000Z", "2999-01-01T00:00:00.000000Z"])
def test_a_lease_renewed_in_the_far_future_is_no_running_service_and_doctor_goes_on(
    api: Any, namespace: str, cluster_objects: ClusterObjects, sharedvol: SharedvolCli, renewed: str
) -> None:
    fallback_class(cluster_objects)
    lease = {
        "metadata": {
            "name": heartbeat.lease_name(),
            "labels": {heartbeat.LABEL: heartbeat.NAME},
            "annotations": {heartbeat.SERVES: PROVISIONER},
        },
        "spec": {"holderIdentity": "someone", "leaseDurationSeconds": 2**31 - 1, "renewTime": renewed},
    }
    client.CoordinationV1Api(api).create_namespaced_lease(namespace, lease)  # 9999: an OverflowError before

    assert heartbeat.running(api, PROVISIONER) is False
    report = sharedvol("doctor", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["fallback_provisioner_running"] is False


@pytest.mark.parametrize("config", ["[]", "null", '"x"', "[" * 100_000 + "]" * 100_000, "{" * 3])
def test_a_local_path_config_that_is_not_a_json_object_means_no_shared_path_and_doctor_goes_on(
    api: Any, cluster_objects: ClusterObjects, sharedvol: SharedvolCli, config: str
) -> None:
    core = client.CoreV1Api(api)
    namespace, name = classes.LOCAL_PATH_CONFIGMAPS[0]
    objects.namespace_gone(core, namespace, 120)
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": {"config.json": config}})
        cluster_objects.storage_class(objects.local_path_class())

        assert classes.local_path_shared(api) is False
        report = sharedvol("doctor")
        assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    finally:
        objects.namespace_gone(core, namespace, 120, delete=True)
