"""The control-plane launcher: stops what it started when a start fails, and can point at another cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rig import cluster as cp


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def test_a_failing_apiserver_stops_the_etcd_already_started_and_names_its_log(
    cluster: cp.ClusterHandle, tmp_path: Path
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "etcd").symlink_to(cluster.bin_dir / "etcd")
    apiserver = fake_bin / "kube-apiserver"
    apiserver.write_text("#!/bin/sh\necho 'flag provided but not defined: --boom' >&2\nexit 3\n")
    apiserver.chmod(0o755)
    plane = cp.ControlPlane(workdir=tmp_path / "work", bin_dir=fake_bin)

    expected = r"kube-apiserver exited with 3; log .*kube-apiserver\.log"
    with pytest.raises(cp.ControlPlaneError, match=expected):
        plane.start()

    pids = [int(line.split()[0]) for line in (tmp_path / "work" / "pids").read_text().splitlines()]
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids)
    assert plane.processes == []


def test_an_external_kubeconfig_gives_a_handle_with_that_clusters_nodes(
    cluster: cp.ClusterHandle, api: Any, tmp_path: Path
) -> None:
    handle = cp.external_cluster(cluster.kubeconfig, tmp_path)

    assert handle.server == cluster.server
    assert sorted(handle.node_names) == sorted(cluster.node_names)
    listed = handle.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert listed == [f"node/{n}" for n in handle.node_names]


def test_the_admin_kubeconfig_verifies_the_apiserver_certificate(cluster: cp.ClusterHandle) -> None:
    out = cluster.kubectl("config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster}")
    assert "certificate-authority-data" in out.stdout
    assert "insecure-skip-tls-verify" not in out.stdout
    assert cluster.kubectl("version", "-o", "json").returncode == 0
