"""The project's images as the tests name them: sharedvol/version.py's tag on the four images scripts/node/image.sh
builds.
"""

from __future__ import annotations

from sharedvol import version

IMAGE_TAG = version.IMAGE_TAG
STEP_IMAGE = version.STEP_IMAGE
PROVISIONER_IMAGE = f"sharedvol-provisioner:{IMAGE_TAG}"
NFS_IMAGE = f"sharedvol-nfs-server:{IMAGE_TAG}"
DATAPLANE_IMAGE = f"sharedvol-dataplane:{IMAGE_TAG}"
