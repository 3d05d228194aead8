#!/usr/bin/env bash
# Build the real Kubeflow Pipelines 2.17.0 backend into a cache keyed by the pinned versions:
# KFP's api-server, persistence agent, driver and launcher (Go, from KFP's sources), Argo Workflows'
# workflow-controller and argoexec, and the MinIO S3 server (Go module proxy); MariaDB from Debian.
#
#   scripts/kfp/build.sh              build what is missing, print the bin directory
#   scripts/kfp/build.sh --print-dir  print the bin directory, build nothing
#
# KFP's sources: the Go module proxy first; where it refuses them (403 on these machines) the local
# copy named by SHAREDVOL_KFP_SOURCES (default: shared/vendor/kubeflow-pipelines-2.17.0 in the
# checkout's parent or grandparent directory), used read-only as a Go `replace` target.
# Every build runs under `nice -n 19` (the machines are shared) and logs its time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=kfp-build

flags_hash=$(echo "$KFP_GO_ENV $KFP_GO_BUILD_FLAGS" | sha256sum | cut -c1-8)
key="kfp-${KFP_VERSION}_argo-${ARGO_VERSION}_minio-${MINIO_VERSION##*-}_go-$flags_hash"
dest="$cache_root/kfp/$key"
bin="$dest/bin"
kfp_bins=(apiserver persistence_agent driver launcher-v2)
argo_bins=(workflow-controller argoexec)

only_print --print-dir "$bin" "$@"

have() { for b in "$@"; do [[ -x "$bin/$b" && -f "$bin/.$b.ok" ]] || return 1; done; }

require_go
mkdir -p "$bin" "$dest/src"
exec 9>"$dest/.lock"
flock 9 # one builder at a time; the others wait and reuse its result
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)
built=0

# --- KFP's sources: the proxy first, then the local copy.
kfp_sources() {
  local dir
  if dir=$(cd "$dest/src" && go mod download -json "github.com/kubeflow/pipelines@$KFP_COMMIT" 2>/dev/null |
    sed -n 's/.*"Dir": "\(.*\)",*/\1/p') && [[ -n "$dir" && -f "$dir/go.mod" ]]; then
    log "KFP sources from the Go module proxy: $dir"
    echo "$dir"
    return
  fi
  dir=${SHAREDVOL_KFP_SOURCES:-}
  if [[ -z "$dir" ]]; then # ../shared next to the checkout (a worktree may sit one level deeper)
    for up in "$root/.." "$root/../.."; do
      dir="$up/shared/vendor/kubeflow-pipelines-$KFP_VERSION"
      [[ -f "$dir/go.mod" ]] && break
    done
  fi
  if [[ ! -f "$dir/go.mod" ]] || ! grep -q '^module github.com/kubeflow/pipelines$' "$dir/go.mod"; then
    log "the Go module proxy refused github.com/kubeflow/pipelines and $dir holds no KFP sources:"
    log "set SHAREDVOL_KFP_SOURCES to a checkout of kubeflow/pipelines tag $KFP_VERSION"
    exit 1
  fi
  log "the Go module proxy refused github.com/kubeflow/pipelines; using the local copy $dir"
  (cd "$dir" && pwd)
}

# --- KFP: a module that requires KFP, replaced by its sources (with its api, kubernetes_platform and
# third_party/ml-metadata sub-modules).
if ! have "${kfp_bins[@]}"; then
  src=$(kfp_sources)
  argo_req=$(sed -n 's|^\s*github.com/argoproj/argo-workflows/v4 \(v[^ ]*\).*|\1|p' "$src/go.mod")
  if [[ "$argo_req" != "$ARGO_VERSION" ]]; then
    log "KFP's go.mod requires Argo $argo_req, versions.env pins $ARGO_VERSION: update versions.env"
    exit 1
  fi
  mod="$dest/src/kfp"
  mkdir -p "$mod"
  {
    echo "module sharedvol.local/kfpbackend"
    echo
    echo "go $(sed -n 's/^go //p' "$src/go.mod")"
    echo
    echo "require github.com/kubeflow/pipelines v0.0.0-00010101000000-000000000000"
    echo
    echo "replace ("
    echo "	github.com/kubeflow/pipelines => $src"
    for sub in api kubernetes_platform third_party/ml-metadata; do
      echo "	github.com/kubeflow/pipelines/$sub => $src/$sub"
    done
    echo ")"
    echo
    grep '^exclude ' "$src/go.mod" || true
  } >"$mod/go.mod"
  cp "$src/go.sum" "$mod/go.sum"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "github.com/kubeflow/pipelines/backend/src/agent/persistence"
	_ "github.com/kubeflow/pipelines/backend/src/apiserver"
	_ "github.com/kubeflow/pipelines/backend/src/v2/cmd/driver"
	_ "github.com/kubeflow/pipelines/backend/src/v2/cmd/launcher-v2"
)
GO
  t0=$(date +%s)
  log "resolving modules (KFP $KFP_VERSION)"
  (cd "$mod" && go mod tidy -e >&2) # -e: upstream tests import packages the local copy leaves out
  log "resolved in $(($(date +%s) - t0)) s; building KFP (cold: several minutes on 2 cores)"
  t0=$(date +%s)
  kfp=github.com/kubeflow/pipelines/backend/src
  # One go build of the four (they share most packages), with the flags tests/kfpcheck uses too
  # (versions.env): cgo for the api-server's go-sqlite3, netgo and osusergo so the driver and launcher,
  # which need no C, link statically for their FROM-scratch images.
  # shellcheck disable=SC2086 # KFP_GO_BUILD_FLAGS is a list of flags
  (cd "$mod" && env "$KFP_GO_ENV" nice -n 19 go build -mod=mod $KFP_GO_BUILD_FLAGS -ldflags "-s -w" -o "$dest/out/" \
    "$kfp/apiserver" "$kfp/agent/persistence" "$kfp/v2/cmd/driver" "$kfp/v2/cmd/launcher-v2")
  for b in driver launcher-v2; do
    if readelf -l "$dest/out/$b" | grep -q 'program interpreter'; then
      log "$b is dynamically linked; its image has no C library: check KFP_GO_BUILD_FLAGS in versions.env"
      exit 1
    fi
  done
  mv "$dest/out/persistence" "$dest/out/persistence_agent"
  for b in "${kfp_bins[@]}"; do mv "$dest/out/$b" "$bin/$b" && touch "$bin/.$b.ok"; done
  log "built KFP in $(($(date +%s) - t0)) s"
  built=1
fi

# --- Argo: its own module, built as upstream builds it (in KFP's module graph v4.0.5 does not compile: KFP
# selects k8s.io 0.35, Argo needs 0.33). Upstream, workflow/executor/osspecific/signal_linux.go is a symlink
# to signal_darwin.go; module zips drop symlinks, so the proxy's v4.0.5 lacks it and argoexec does not
# compile for Linux. The build uses a copy of the module from the proxy with that symlink put back.
if ! have "${argo_bins[@]}"; then
  t0=$(date +%s)
  log "fetching Argo $ARGO_VERSION"
  adir=$(cd "$dest/src" && go mod download -json "github.com/argoproj/argo-workflows/v4@$ARGO_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  asrc="$dest/src/argo-workflows"
  rm -rf "$asrc" && cp -r "$adir" "$asrc" && chmod -R u+w "$asrc"
  [[ -e "$asrc/workflow/executor/osspecific/signal_linux.go" ]] ||
    ln -s signal_darwin.go "$asrc/workflow/executor/osspecific/signal_linux.go"
  (cd "$asrc" && nice -n 19 go build -ldflags "-s -w -X github.com/argoproj/argo-workflows/v4.version=$ARGO_VERSION" \
    -o "$dest/out/" ./cmd/workflow-controller ./cmd/argoexec)
  for b in "${argo_bins[@]}"; do mv "$dest/out/$b" "$bin/$b" && touch "$bin/.$b.ok"; done
  log "built Argo in $(($(date +%s) - t0)) s"
  built=1
fi

# --- Manifests the backend applies: Argo's CRDs (from the Argo module), KFP's ScheduledWorkflow CRD (its
# persistence agent watches it) and KFP's pipeline-runner RBAC.
if [[ ! -f "$dest/manifests/.ok" || ! -f "$dest/manifests/crds/scheduled-workflow-crd.yaml" ]]; then
  src=$(kfp_sources)
  mkdir -p "$dest/manifests/crds" "$dest/manifests/kfp"
  cp "$dest/src/argo-workflows"/manifests/base/crds/minimal/argoproj.io_*.yaml "$dest/manifests/crds/"
  cp "$src"/manifests/kustomize/base/pipeline/cluster-scoped/scheduled-workflow-crd.yaml "$dest/manifests/crds/"
  cp "$src"/manifests/kustomize/base/pipeline/pipeline-runner-{sa,role,rolebinding}.yaml "$dest/manifests/kfp/"
  chmod -R u+w "$dest/manifests"
  touch "$dest/manifests/.ok"
fi

# --- MinIO (S3 API for KFP's artifacts and Argo's logs)
if ! have minio; then
  t0=$(date +%s)
  log "building MinIO $MINIO_VERSION (cold: several minutes on 2 cores)"
  GOBIN="$dest/out" nice -n 19 go install -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mv "$dest/out/minio" "$bin/minio" && touch "$bin/.minio.ok"
  log "built MinIO in $(($(date +%s) - t0)) s"
  built=1
fi

# --- MariaDB (KFP's default database driver) from Debian, when missing. Service starts are left to the
# backend (rig/kfp/backend.py runs mariadbd itself, on a free port).
if [[ ! -x /usr/sbin/mariadbd ]]; then
  t0=$(date +%s)
  log "installing mariadb-server (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
    mariadb-server >&2 || { log "apt-get install mariadb-server failed (run apt-get update first?)"; exit 1; }
  log "installed MariaDB in $(($(date +%s) - t0)) s"
fi

((built)) && log "cold build finished in $(($(date +%s) - start)) s" || log "reusing cached binaries in $bin"
echo "$bin"
