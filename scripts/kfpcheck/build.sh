#!/usr/bin/env bash
# Build tests/kfpcheck (a compiled pipeline through KFP 2.17.0's own API-server and driver code)
# into a cache keyed by the checker's sources and the KFP release, and print the binary's path.
#
#   scripts/kfpcheck/build.sh              build if missing, print the binary path
#   scripts/kfpcheck/build.sh --print-path print the binary path, build nothing
#
# KFP's sources come from the Go module proxy at the release commit. Where the proxy refuses them,
# a local copy is used as a `replace` target: $SHAREDVOL_KFP_SOURCES, else
# ../shared/vendor/kubeflow-pipelines-$KFP_VERSION next to the repository (or next to the main
# checkout when this is a git worktree). Every other module comes from the proxy.
set -euo pipefail

KFP=github.com/kubeflow/pipelines

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
# shellcheck source=../kfp/versions.env
source "$here/../kfp/versions.env" # KFP_VERSION, KFP_COMMIT and the Go flags the backend build uses too
log_name=kfpcheck
repo=$(cd "$here/../.." && pwd)
src_dir="$repo/tests/kfpcheck"
key=$(cd "$repo" && { echo "kfp=$KFP_VERSION@$KFP_COMMIT"; cat scripts/kfpcheck/build.sh scripts/kfp/versions.env;
  find tests/kfpcheck -name '*.go' -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -c1-16)
dest="$cache_root/kfpcheck/$key"
bin="$dest/kfpcheck"
only_print --print-path "$bin" "$@"
if [[ -x "$bin" ]]; then
  log "reusing $bin"
  echo "$bin"
  exit 0
fi
require_go

start=$(date +%s)
mkdir -p "$cache_root/kfpcheck"
work=$(mktemp -d "$cache_root/kfpcheck/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-buildvcs=false "${KFP_GO_ENV?}"

# --- KFP's sources: the proxy first (the module and its nested modules at the release commit).
probe="$work/probe"
mkdir -p "$probe"
(cd "$probe" && printf 'module probe\n\ngo 1.26\n' >go.mod)
kfp_dir="" requires="" replaces=""
if info=$(cd "$probe" && go mod download -json "$KFP@$KFP_COMMIT" 2>/dev/null); then
  kfp_dir=$(sed -n 's/.*"Dir": "\(.*\)",*/\1/p' <<<"$info")
  version=$(sed -n 's/.*"Version": "\(.*\)",*/\1/p' <<<"$info")
  requires="$KFP $version"
  for sub in api kubernetes_platform; do
    sub_info=$(cd "$probe" && go mod download -json "$KFP/$sub@$KFP_COMMIT")
    requires+=$'\n'"$KFP/$sub $(sed -n 's/.*"Version": "\(.*\)",*/\1/p' <<<"$sub_info")"
  done
  log "KFP $KFP_VERSION from the Go module proxy ($version)"
else
  local_src=${SHAREDVOL_KFP_SOURCES:-}
  if [[ -z "$local_src" ]]; then
    for base in "$repo" "$(cd "$(git -C "$repo" rev-parse --git-common-dir 2>/dev/null || echo "$repo/.git")/.." && pwd)"; do
      if [[ -f "$base/../shared/vendor/kubeflow-pipelines-$KFP_VERSION/go.mod" ]]; then
        local_src=$(cd "$base/../shared/vendor/kubeflow-pipelines-$KFP_VERSION" && pwd)
        break
      fi
    done
  fi
  if [[ -z "$local_src" || ! -f "$local_src/go.mod" ]]; then
    log "the Go module proxy refuses $KFP@$KFP_COMMIT and no local copy was found:"
    log "set SHAREDVOL_KFP_SOURCES to a checkout of kubeflow/pipelines $KFP_VERSION"
    exit 1
  fi
  kfp_dir=$local_src
  requires="$KFP v0.0.0-00010101000000-000000000000"
  replaces="$KFP => $local_src"
  for sub in api kubernetes_platform third_party/ml-metadata; do
    requires+=$'\n'"$KFP/$sub v0.0.0-00010101000000-000000000000"
    replaces+=$'\n'"$KFP/$sub => $local_src/$sub"
  done
  log "the Go module proxy refuses $KFP; using the local copy $local_src"
fi

# --- The checker's module: main.go and a copy of the driver package with the export file added.
mod="$work/src"
mkdir -p "$mod/kfpdriver"
cp "$src_dir/main.go" "$mod/"
for f in "$kfp_dir"/backend/src/v2/driver/*.go; do
  [[ "$f" == *_test.go ]] || cp "$f" "$mod/kfpdriver/"
done
chmod u+w "$mod/kfpdriver"/*.go
cp "$src_dir/driverexport/zz_sharedvol_export.go" "$mod/kfpdriver/"
{
  echo "module sharedvol.local/kfpcheck"
  echo
  echo "go 1.26.0"
  echo
  echo "require ("
  sed 's/^/\t/' <<<"$requires"
  echo ")"
  if [[ -n "$replaces" ]]; then
    echo
    echo "replace ("
    sed 's/^/\t/' <<<"$replaces"
    echo ")"
  fi
  # KFP's own exclude.
  echo
  echo "exclude github.com/mitchellh/osext v0.0.0-20151018003038-5e2d6d41470f"
} >"$mod/go.mod"
# KFP's go.sum pins what its go.mod requires: start from it, tidy adds the rest from the proxy.
cp "$kfp_dir/go.sum" "$mod/go.sum" && chmod u+w "$mod/go.sum"
log "resolving modules"
(cd "$mod" && go mod tidy -e >&2)
log "building (cold: a few minutes on 2 cores)"
# shellcheck disable=SC2086 # KFP_GO_BUILD_FLAGS is a list of flags
(cd "$mod" && go build $KFP_GO_BUILD_FLAGS -ldflags "-s -w" -o "$work/kfpcheck" .)
mkdir -p "$dest"
mv "$work/kfpcheck" "$bin.tmp" && mv "$bin.tmp" "$bin"
cp "$mod/go.mod" "$mod/go.sum" "$dest/"
log "built in $(($(date +%s) - start)) s: $bin"
echo "$bin"
