"""The fallback provisioner's decisions, without a cluster: class settings, node choice, the PV, reclaiming."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from storage import errors
from storage.provisioner import settings, volumes


def _sc(mode: str = "WaitForFirstConsumer", **params: str) -> NS:
    return NS(
        metadata=NS(name="sharedvol-hostpath"), parameters=params, reclaim_policy="Delete", volume_binding_mode=mode
    )


def _claim(annotations: dict[str, str] | None = None) -> NS:
    return NS(
        metadata=NS(
            namespace="kubeflow",
            name="0f1e-sharedvol",
            uid="3f2a9c1e-0000-4000-8000-000000000001",
            annotations=annotations,
        ),
        spec=NS(
            storage_class_name="sharedvol-hostpath",
            access_modes=["ReadWriteMany"],
            resources=NS(requests={"storage": "20Gi"}),
        ),
    )


def test_the_pv_is_named_after_the_claim_uid_and_pre_bound_with_it() -> None:
    config = volumes.class_config(_sc(basePath="/data/sv"))
    pv = volumes.pv_for(_claim(), config, "gpu-node", "sharedvol.io/hostpath")

    assert pv["metadata"]["name"] == "pvc-3f2a9c1e-0000-4000-8000-000000000001"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "sharedvol.io/hostpath"
    assert pv["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "kubeflow",
        "name": "0f1e-sharedvol",
        "uid": "3f2a9c1e-0000-4000-8000-000000000001",
    }
    assert pv["spec"]["hostPath"] == {"path": "/data/sv/kubeflow-0f1e-sharedvol-3f2a9c1e", "type": "DirectoryOrCreate"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["storageClassName"] == "sharedvol-hostpath"
    assert pv["spec"]["capacity"] == {"storage": "20Gi"}


def test_wait_for_first_consumer_waits_for_the_schedulers_node() -> None:
    config = volumes.class_config(_sc())
    assert volumes.node_for(_claim(), config, ["n1"]) is None
    chosen = _claim({"volume.kubernetes.io/selected-node": "n2"})
    assert volumes.node_for(chosen, config, ["n1", "n2"]) == "n2"


def test_immediate_uses_the_class_node_or_the_first_ready_node() -> None:
    assert volumes.node_for(_claim(), volumes.class_config(_sc("Immediate", node="gpu")), ["a"]) == "gpu"
    assert volumes.node_for(_claim(), volumes.class_config(_sc("Immediate")), ["a", "b"]) == "a"


@pytest.mark.parametrize(
    ("params", "message"),
    [({"onDelete": "shred"}, "onDelete 'shred' is unknown"), ({"basePath": "/"}, "host path '/'")],
)
def test_a_malformed_class_is_refused(params: dict[str, str], message: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match=message):
        volumes.class_config(_sc(**params))


def test_reclaiming_deletes_archives_or_keeps_the_directory(tmp_path: Path) -> None:
    for mode in ("delete", "archive", "retain"):
        d = tmp_path / mode
        d.mkdir()
        (d / "latest.pth").write_bytes(b"w")
        volumes.reclaim_directory(str(d), mode)
    assert not (tmp_path / "delete").exists()
    assert (tmp_path / "archived-archive" / "latest.pth").read_bytes() == b"w"
    assert (tmp_path / "retain" / "latest.pth").exists()
    assert "nothing to delete" in volumes.reclaim_directory(str(tmp_path / "missing"), "delete")


def test_settings_map_node_paths_under_the_base_path_root_and_refuse_a_bad_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings.Settings(base_path_root="/host").local_path("/var/lib/sharedvol/x") == "/host/var/lib/sharedvol/x"
    assert settings.Settings().local_path("/var/lib/sharedvol/x") == "/var/lib/sharedvol/x"
    monkeypatch.setenv("SHAREDVOL_HEALTH_PORT", "http")
    with pytest.raises(errors.InvalidRequestError, match="SHAREDVOL_HEALTH_PORT='http' is not a port number"):
        settings.Settings.from_env()
