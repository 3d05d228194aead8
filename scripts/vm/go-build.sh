#!/usr/bin/env bash
# Build the CSI NFS driver, its sidecars and CoreDNS into a cache keyed by the content of their inputs:
#   nfsplugin, csi-node-driver-registrar, livenessprobe, csi-resizer   ../shared/vendor/csi (-mod=vendor, offline)
#   csi-provisioner v6.3.0, coredns v1.12.1                            the Go module proxy
# Versions: scripts/vm/versions.env. All static (CGO_ENABLED=0).
#
#   scripts/vm/go-build.sh              build what is missing, print the bin directory
#   scripts/vm/go-build.sh --print-dir  print the bin directory, build nothing
#
# SHAREDVOL_CSI_VENDOR: where the vendored sources are (default: shared/vendor/csi next to the checkout, or next to
# the main checkout of a worktree). The Go module proxy refuses csi-driver-nfs and the three sidecars.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=vm-go

vendor=${SHAREDVOL_CSI_VENDOR:-}
if [[ -z "$vendor" ]]; then
  for base in "$repo" "$(cd "$(git -C "$repo" rev-parse --git-common-dir 2>/dev/null || echo "$repo/.git")/.." && pwd)"; do
    [[ -d "$base/../shared/vendor/csi" ]] && vendor=$(cd "$base/../shared/vendor/csi" && pwd) && break
  done
fi
key=$(cat <(grep -E "^(NFSPLUGIN|NODE_DRIVER|LIVENESS|CSI_|COREDNS)" "$here/versions.env") "$here/go-build.sh" \
  "$here/nfsplugin/main.go" | sha256sum | cut -c1-16)
bin="$cache_root/vm/go-$key/bin"
only_print --print-dir "$bin" "$@"

progs=(nfsplugin csi-node-driver-registrar livenessprobe csi-resizer csi-provisioner coredns)
missing=()
for p in "${progs[@]}"; do [[ -x "$bin/$p" ]] || missing+=("$p"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  log "reusing $bin"
  echo "$bin"
  exit 0
fi
require_go
[[ -n "$vendor" && -d "$vendor/csi-driver-nfs-$NFSPLUGIN_VERSION" ]] || {
  log "the vendored CSI sources are missing ($vendor/csi-driver-nfs-$NFSPLUGIN_VERSION): set SHAREDVOL_CSI_VENDOR"
  exit 1
}
mkdir -p "$bin"
work=$(mktemp -d /var/tmp/sharedvol-vm-go.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)

vendored() { # NAME DIR PACKAGE LDFLAGS
  [[ -x "$bin/$1" ]] && return 0
  local t0=$(date +%s)
  log "building $1 from $2 (-mod=vendor)"
  cp -r "$vendor/$2" "$work/$2" && chmod -R u+w "$work/$2"
  (cd "$work/$2" && go build -mod=vendor -trimpath -ldflags "-s -w $4" -o "$bin/$1.tmp" "$3")
  mv "$bin/$1.tmp" "$bin/$1"
  log "built $1 in $(($(date +%s) - t0)) s"
}

proxied() { # NAME MODULE@VERSION PACKAGE LDFLAGS
  [[ -x "$bin/$1" ]] && return 0
  local t0=$(date +%s) dir="$work/$1"
  log "building $1 from $2 (Go module proxy)"
  mkdir -p "$dir"
  (cd "$dir" && go mod download -json "$2" >"$dir/dl.json")
  local src
  src=$(sed -n 's/.*"Dir": "\(.*\)",*/\1/p' "$dir/dl.json")
  cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
  (cd "$dir/src" && go build -mod=mod -trimpath -ldflags "-s -w $4" -o "$bin/$1.tmp" "$3")
  mv "$bin/$1.tmp" "$bin/$1"
  log "built $1 in $(($(date +%s) - t0)) s"
}

# The driver's tag has no cmd/: sharedvol's own main (scripts/vm/nfsplugin) goes into the copy.
if [[ ! -x "$bin/nfsplugin" ]]; then
  d="csi-driver-nfs-$NFSPLUGIN_VERSION"
  cp -r "$vendor/$d" "$work/$d" && chmod -R u+w "$work/$d"
  mkdir -p "$work/$d/cmd/nfsplugin" && cp "$here/nfsplugin/main.go" "$work/$d/cmd/nfsplugin/"
  t0=$(date +%s)
  log "building nfsplugin $NFSPLUGIN_VERSION (-mod=vendor)"
  (cd "$work/$d" && go build -mod=vendor -trimpath -ldflags "-s -w \
    -X github.com/kubernetes-csi/csi-driver-nfs/pkg/nfs.driverVersion=$NFSPLUGIN_VERSION" \
    -o "$bin/nfsplugin.tmp" ./cmd/nfsplugin)
  mv "$bin/nfsplugin.tmp" "$bin/nfsplugin"
  log "built nfsplugin in $(($(date +%s) - t0)) s"
fi
vendored csi-node-driver-registrar "node-driver-registrar-$NODE_DRIVER_REGISTRAR_VERSION" ./cmd/csi-node-driver-registrar \
  "-X main.version=$NODE_DRIVER_REGISTRAR_VERSION"
vendored livenessprobe "livenessprobe-$LIVENESSPROBE_VERSION" ./cmd/livenessprobe "-X main.version=$LIVENESSPROBE_VERSION"
vendored csi-resizer "external-resizer-$CSI_RESIZER_VERSION" ./cmd/csi-resizer "-X main.version=$CSI_RESIZER_VERSION"
proxied csi-provisioner "github.com/kubernetes-csi/external-provisioner/v6@$CSI_PROVISIONER_VERSION" ./cmd/csi-provisioner \
  "-X main.version=$CSI_PROVISIONER_VERSION"
proxied coredns "github.com/coredns/coredns@$COREDNS_VERSION" . \
  "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
log "built in $(($(date +%s) - start)) s"
echo "$bin"
