#!/usr/bin/env bash
# Build the Kubeflow Trainer and JobSet controller images from the binaries of scripts/trainer/build.sh, on the
# project's debootstrapped base (debian:bookworm-slim, scripts/node/base-image.sh), with docker/controller.Dockerfile,
# and make them available to a real node's containerd (scripts/node/import.sh) when one runs in NODE_DIR.
#
#   scripts/trainer/images.sh [TRAINER_DIR]     TRAINER_DIR: what scripts/trainer/build.sh printed (built if absent)
#                                               env: NODE_DIR (default .node)
#
# The names are those of versions.env (the rendered manifests use them). Cached by content: the build context,
# ~/.cache/sharedvol/trainer-images/<hash of the binary, the Dockerfile, this script and the base image's id>, holds
# the binary alone; an image whose label sharedvol.content carries that hash is not built again, and the node's
# containerd is not fed an image id it has.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=trainer-images
node_dir=${NODE_DIR:-$repo/.node}
dockerfile=$repo/docker/controller.Dockerfile

trainer_dir=${1:-$("$here/build.sh")}
docker info >/dev/null 2>&1 || { log "no Docker engine answers (docker info failed): start one (make node-up starts dockerd)"; exit 1; }
"$repo/scripts/node/base-image.sh"
base_id=$(docker image inspect -f '{{.Id}}' debian:bookworm-slim)

image() { # NAME BINARY
  local name=$1 binary=$2 key context have t0
  [[ -x "$binary" ]] || { log "$binary is missing: run scripts/trainer/build.sh"; exit 1; }
  key=$( (sha256sum "$binary" "$dockerfile" "$here/images.sh" | cut -d' ' -f1; echo "$base_id") | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{index .Config.Labels "sharedvol.content"}}' "$name" 2>/dev/null || true)
  if [[ "$have" == "$key" ]]; then
    log "$name is built ($key)"
    return 0
  fi
  context="$cache_root/trainer-images/$key"
  mkdir -p "$context"
  if [[ ! -f "$context/manager" ]]; then
    cp "$binary" "$context/manager.tmp"
    mv "$context/manager.tmp" "$context/manager"
  fi
  t0=$(date +%s)
  DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build -q --label "sharedvol.content=$key" -f "$dockerfile" -t "$name" \
    "$context" >/dev/null
  log "built $name in $(($(date +%s) - t0)) s ($key)"
}

image "$TRAINER_IMAGE" "$trainer_dir/bin/trainer-controller-manager"
image "$JOBSET_IMAGE" "$trainer_dir/bin/jobset-controller"

if [[ -f "$node_dir/node.env" ]]; then
  "$repo/scripts/node/import.sh" "$node_dir" "$TRAINER_IMAGE" "$JOBSET_IMAGE"
fi
