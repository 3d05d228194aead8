#!/usr/bin/env bash
# Build the project's images with the local Docker engine (what `make image` runs):
#   sharedvol:TAG              docker/Dockerfile, default target: every pipeline step
#   sharedvol-provisioner:TAG  docker/Dockerfile --target provisioner: the fallback provisioner, no torch
#   sharedvol-nfs-server:TAG   k8s/nfs/server/Dockerfile: the in-cluster NFS server (nfs-ganesha, userspace)
#   sharedvol-dataplane:TAG    docker/Dockerfile --target dataplane: the steps' data plane without torch (checks a
#                              volume's checkpoint handoff where the step image does not fit: the two-node tier's VM)
# on the base debian:bookworm-slim (scripts/node/base-image.sh makes it where the engine lacks it)
# and, when a real node from `make node-up` runs in NODE_DIR, make them available to its containerd
# (scripts/node/import.sh: skipped for an image the node already has, by image id).
#
#   scripts/node/image.sh [TAG]      env: NODE_DIR (default .node), EXTRA_CA_CERTS_DIR, DOCKER_BUILD_ARGS,
#                                         IMAGE_BUILD_LOG (a file for docker build's output; default: the terminal)
#
# EXTRA_CA_CERTS_DIR (default /usr/local/share/ca-certificates, the machine's own local CAs; empty for none): every
# *.crt there is passed as build arg EXTRA_CA_CERTS, for builds behind a TLS-intercepting proxy.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tag=${1:-$("$repo/scripts/version.sh")}
node_dir=${NODE_DIR:-$repo/.node}
ca_dir=${EXTRA_CA_CERTS-/usr/local/share/ca-certificates}
ca_dir=${EXTRA_CA_CERTS_DIR-$ca_dir}
log() { printf '[image] %s\n' "$*" >&2; }

command -v docker >/dev/null || { log "docker is not installed: the images are built with a Docker engine"; exit 1; }
docker info >/dev/null 2>&1 || { log "no Docker engine answers (docker info failed): start one (make node-up starts dockerd)"; exit 1; }
# The step image's base: made with debootstrap where the engine lacks it (no registry here; needs root then).
"$repo/scripts/node/base-image.sh"

args=()
if [[ -n "$ca_dir" ]] && compgen -G "$ca_dir/*.crt" >/dev/null; then
  args+=(--build-arg "EXTRA_CA_CERTS=$(cat "$ca_dir"/*.crt)")
  log "extra CA certificates from $ca_dir: $(cd "$ca_dir" && echo *.crt)"
fi
# shellcheck disable=SC2206
args+=(${DOCKER_BUILD_ARGS:-})

build() { # NAME DOCKERFILE CONTEXT [TARGET]
  local t0 target=()
  t0=$(date +%s)
  [[ -n "${4:-}" ]] && target=(--target "$4")
  log "building $1${IMAGE_BUILD_LOG:+ (output: $IMAGE_BUILD_LOG)}"
  if [[ -n "${IMAGE_BUILD_LOG:-}" ]]; then
    if ! DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build "${args[@]}" "${target[@]}" -f "$2" -t "$1" "$3" \
      >>"$IMAGE_BUILD_LOG" 2>&1; then
      tail -30 "$IMAGE_BUILD_LOG" >&2
      log "building $1 failed; full output: $IMAGE_BUILD_LOG"
      exit 1
    fi
  else
    DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build "${args[@]}" "${target[@]}" -f "$2" -t "$1" "$3" >&2
  fi
  log "built $1 in $(($(date +%s) - t0)) s ($(docker image inspect -f '{{.Id}}' "$1" | cut -c1-19))"
}

build "sharedvol-provisioner:$tag" "$repo/docker/Dockerfile" "$repo" provisioner
build "sharedvol:$tag" "$repo/docker/Dockerfile" "$repo"
build "sharedvol-nfs-server:$tag" "$repo/k8s/nfs/server/Dockerfile" "$repo/k8s/nfs/server"
build "sharedvol-dataplane:$tag" "$repo/docker/Dockerfile" "$repo" dataplane

if [[ -f "$node_dir/node.env" ]]; then
  "$repo/scripts/node/import.sh" "$node_dir" "sharedvol:$tag" "sharedvol-provisioner:$tag" "sharedvol-nfs-server:$tag"
fi
