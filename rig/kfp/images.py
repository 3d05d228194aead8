"""The backend's three local images (KFP driver, KFP launcher, Argo's argoexec), straight into the node's containerd.

Each is one static Go binary from ``scripts/kfp/build.sh`` plus the machine's CA bundle and a ``/tmp``, in
a single layer with no base (what ``FROM scratch`` + ``COPY`` gives). The image is written as a
``docker save`` archive, built here (no Docker engine needed; reproducible: fixed times and owners) and
imported with ``ctr images import``. An image the node already has under the same image id (the config
digest, as the CRI reports it) is not imported again.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from rig.kfp import config as kc

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class ImageSpec:
    """One single-binary image."""

    name: str
    binary: Path
    path_in_image: str
    entrypoint: tuple[str, ...]
    user: str = ""


def specs(bin_dir: Path, images: kc.Images) -> list[ImageSpec]:
    """The driver, launcher and argoexec images, laid out as KFP's and Argo's Dockerfiles lay them out (same
    users: KFP's compiler sets runAsNonRoot on the driver).
    """
    return [
        ImageSpec(images.driver, bin_dir / "driver", "bin/driver", ("/bin/driver",), user="65532"),
        ImageSpec(images.launcher, bin_dir / "launcher-v2", "bin/launcher-v2", ("/bin/launcher-v2",), user="65532"),
        ImageSpec(images.argoexec, bin_dir / "argoexec", "bin/argoexec", ("argoexec",), user="8737"),
    ]


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.mode = 0, 0, 0, mode
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def layer(spec: ImageSpec) -> bytes:
    """The image's one layer: the binary, the CA bundle, /tmp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "etc/ssl", "etc/ssl/certs"):
            _add(tar, d, None, 0o755)
        _add(tar, "tmp", None, 0o1777)
        _add(tar, spec.path_in_image, spec.binary.read_bytes(), 0o755)
        if CA_BUNDLE.exists():
            _add(tar, "etc/ssl/certs/ca-certificates.crt", CA_BUNDLE.read_bytes(), 0o644)
    return buf.getvalue()


def archive(spec: ImageSpec) -> tuple[bytes, str]:
    """A ``docker save`` archive of the image (manifest.json, config, layer) and its image id (config digest)."""
    data = layer(spec)
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(spec.entrypoint),
            "Env": ["PATH=/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "User": spec.user,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "sharedvol rig/kfp/images.py", "created": "1970-01-01T00:00:00Z"}],
        "created": "1970-01-01T00:00:00Z",
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [_docker_name(spec.name)], "Layers": [layer_name]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, config_name, config_bytes, 0o644)
        _add(tar, layer_name.split("/")[0], None, 0o755)
        _add(tar, layer_name, data, 0o644)
        _add(tar, "manifest.json", json.dumps(manifest).encode(), 0o644)
    return buf.getvalue(), "sha256:" + config_name.removesuffix(".json")


def _docker_name(name: str) -> str:
    """The name containerd stores for a short image name (the kubelet asks for this one)."""
    return name if "/" in name else f"docker.io/library/{name}"


def import_all(bin_dir: Path, containerd: Path, crictl: Path, images: kc.Images | None = None) -> list[str]:
    """Import into the node's containerd (namespace k8s.io) every image it lacks under the same image id;
    return those imported.
    """
    imported = []
    for spec in specs(bin_dir, images or kc.Images()):
        data, image_id = archive(spec)
        have = subprocess.run(
            [str(crictl), "--runtime-endpoint", f"unix://{containerd}", "inspecti", "-o", "go-template",
             "--template", "{{.status.id}}", spec.name],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if have == image_id:
            continue
        ctr = ["ctr", "--address", str(containerd), "-n", "k8s.io", "images", "import", "-"]
        subprocess.run(ctr, input=data, capture_output=True, check=True)
        imported.append(spec.name)
    return imported
