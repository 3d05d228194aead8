"""The single-binary images are built reproducibly: the same binary gives the same image id, which is how the
import knows the node already has an image; and they run as the users KFP's and Argo's Dockerfiles set."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from rig.kfp import config as kc
from rig.kfp import images


def _fake_bins(directory: Path, content: bytes) -> Path:
    directory.mkdir(exist_ok=True)
    for name in ("driver", "launcher-v2", "argoexec"):
        (directory / name).write_bytes(content)
    return directory


def test_the_same_binary_gives_the_same_image_id_and_another_binary_another(tmp_path: Path) -> None:
    one = _fake_bins(tmp_path / "a", b"\x7fELF one")
    same = _fake_bins(tmp_path / "b", b"\x7fELF one")
    other = _fake_bins(tmp_path / "c", b"\x7fELF two")

    ids = [[images.archive(spec)[1] for spec in images.specs(d, kc.Images())] for d in (one, same, other)]

    assert ids[0] == ids[1]
    assert all(a != b for a, b in zip(ids[0], ids[2], strict=True))


def test_the_archive_holds_the_binary_and_runs_it_as_the_upstream_user(tmp_path: Path) -> None:
    bins = _fake_bins(tmp_path, b"\x7fELF driver")
    spec = images.specs(bins, kc.Images())[0]

    data, image_id = images.archive(spec)

    with tarfile.open(fileobj=io.BytesIO(data)) as outer:
        [manifest] = json.loads(outer.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(outer.extractfile(manifest["Config"]).read())  # type: ignore[union-attr]
        layer = outer.extractfile(manifest["Layers"][0]).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        binary = inner.extractfile("bin/driver").read()  # type: ignore[union-attr]
        mode = inner.getmember("bin/driver").mode
    assert manifest["RepoTags"] == [f"docker.io/library/{kc.Images().driver}"]
    assert image_id == "sha256:" + manifest["Config"].removesuffix(".json")
    assert config["config"]["User"] == "65532" and config["config"]["Entrypoint"] == ["/bin/driver"]
    assert binary == b"\x7fELF driver" and mode == 0o755
