#!/usr/bin/env bash
# Make images from the local Docker engine available to the containerd of a real node (`make node-up`), so pods
# that name them start without a registry (imagePullPolicy IfNotPresent or Never).
#
#   scripts/node/import.sh NODE_DIR IMAGE...
#
# An image the node already has under the same image id is skipped (a re-import streams every layer again: for the
# multi-GB step image that is minutes).
set -euo pipefail

node_dir=$1
shift
log() { printf '[import] %s\n' "$*" >&2; }
[[ -f "$node_dir/node.env" ]] || { log "no node in $node_dir (no node.env): start one with make node-up"; exit 1; }
# shellcheck source=/dev/null
source "$node_dir/node.env"
: "${CONTAINERD_ADDRESS:?node.env lacks CONTAINERD_ADDRESS}" "${BIN_DIR:?node.env lacks BIN_DIR}"
[[ -S "$CONTAINERD_ADDRESS" ]] || { log "the node's containerd is not running ($CONTAINERD_ADDRESS): make node-up"; exit 1; }

for image in "$@"; do
  want=$(docker image inspect -f '{{.Id}}' "$image") || { log "$image is not in the Docker engine: build it first"; exit 1; }
  have=$("$BIN_DIR/crictl" --runtime-endpoint "unix://$CONTAINERD_ADDRESS" inspecti -o go-template \
    --template '{{.status.id}}' "$image" 2>/dev/null || true)
  if [[ "$have" == "$want" ]]; then
    log "$image: the node has it already ($want)"
    continue
  fi
  t0=$(date +%s)
  log "$image: importing into the node's containerd ($want)"
  # Replacing an image of the same name lets containerd's garbage collector remove a layer snapshot the import
  # was about to reuse ("parent snapshot ... does not exist": containerd issues 2382, 10835); the next attempt
  # unpacks that layer again.
  for attempt in 1 2 3; do
    if docker save "$image" | ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images import - >/dev/null; then
      break
    fi
    ((attempt < 3)) || { log "$image: import failed 3 times (above)"; exit 1; }
    log "$image: import failed (above); attempt $((attempt + 1)) of 3"
  done
  log "$image: imported in $(($(date +%s) - t0)) s"
done
