"""The version of sharedvol and the tag of the images built from it: the one place they are written.

pyproject.toml, the Makefile (``IMAGE_TAG``) and scripts/node/image.sh read ``VERSION`` from this file; kustomize
cannot, so tests/unit/test_pins.py checks that the images named in k8s/ and the docs carry this tag.
"""

VERSION = "0.1.0"
IMAGE_TAG = VERSION
STEP_IMAGE = f"sharedvol:{IMAGE_TAG}"  # docker/Dockerfile's default target: every pipeline step
