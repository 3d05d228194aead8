#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok) and the real node's programs (kubelet, kube-proxy, crictl, and a pause image from
# Kubernetes' own pause.c) from the Go module proxy into a cache keyed by the pinned versions.
#
#   scripts/controlplane/build.sh              build if missing, print the bin directory
#   scripts/controlplane/build.sh --print-dir  print the bin directory, build nothing
#
# A cached binary is reused only when its --version matches the pin; only what is missing is built.
# The pause image is bin/pause.tar (docker-archive format, FROM scratch: the static pause binary),
# named by bin/pause.image; `ctr images import` and `docker load` both read it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=controlplane

key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
dest="$cache_root/controlplane/$key"
bin="$dest/bin"
only_print --print-dir "$bin" "$@"

version_ok() {
  # $1 binary, $2 expected version text; the output is captured first so that grep -q
  # closing the pipe early cannot fail the check under pipefail.
  local out
  [[ -x "$bin/$1" ]] || return 1
  out=$("$bin/$1" "${@:3}" 2>&1 | head -5) || true
  [[ "$out" == *"$2"* ]]
}

cached() {
  version_ok etcd "${ETCD_VERSION#v}" --version &&
    version_ok kube-apiserver "$KUBERNETES_VERSION" --version &&
    version_ok kube-controller-manager "$KUBERNETES_VERSION" --version &&
    version_ok kube-scheduler "$KUBERNETES_VERSION" --version &&
    version_ok kubectl "$KUBERNETES_VERSION" version --client &&
    version_ok kwok "$KWOK_VERSION" --version &&
    version_ok kubelet "$KUBERNETES_VERSION" --version &&
    version_ok kube-proxy "$KUBERNETES_VERSION" --version &&
    version_ok crictl "$CRICTL_VERSION" --version &&
    version_ok pause "$KUBERNETES_VERSION" -v &&
    [[ -s "$bin/pause.tar" && "$(cat "$bin/pause.image" 2>/dev/null)" == "$PAUSE_IMAGE" ]]
}

if cached; then
  log "reusing cached binaries in $bin"
  echo "$bin"
  exit 0
fi

require_go
start=$(date +%s)
mkdir -p "$bin" "$dest/src"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
log "cold build into $dest (about 20-35 min on 2 cores the first time)"

# --- Kubernetes: a module that requires k8s.io/kubernetes and maps every staging module to its tag.
k8s_src="$dest/src/kubernetes"
mkdir -p "$k8s_src"
staging_tag="v0.${KUBERNETES_VERSION#v1.}"
log "resolving k8s.io/kubernetes $KUBERNETES_VERSION (staging modules at $staging_tag)"
upstream_mod=$(cd "$k8s_src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
{
  echo "module sharedvol.local/controlplane"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/').0"
  echo
  echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
  echo
  echo "replace ("
  grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$upstream_mod" |
    awk -v tag="$staging_tag" '{print "\t" $1 " => " $1 " " tag}'
  echo ")"
} >"$k8s_src/go.mod"
cat >"$k8s_src/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)
GO
(cd "$k8s_src" && go mod tidy -e >/dev/null 2>&1 || true)
(cd "$k8s_src" && go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null)
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  if [[ $cmd == kubectl ]]; then version_ok kubectl "$KUBERNETES_VERSION" version --client && continue; fi
  if [[ $cmd != kubectl ]]; then version_ok "$cmd" "$KUBERNETES_VERSION" --version && continue; fi
  t0=$(date +%s)
  log "building $cmd"
  (cd "$k8s_src" && go build -mod=mod -ldflags "$ldflags" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  log "built $cmd in $(($(date +%s) - t0)) s"
done

# --- etcd: a two-line main around etcdmain, so no replace directives are needed.
etcd_src="$dest/src/etcd"
mkdir -p "$etcd_src"
cat >"$etcd_src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
printf 'module sharedvol.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$etcd_src/go.mod"
if ! version_ok etcd "${ETCD_VERSION#v}" --version; then
  t0=$(date +%s)
  log "building etcd $ETCD_VERSION"
  (cd "$etcd_src" && go mod tidy >/dev/null && go build -mod=mod -ldflags "-s -w" -o "$bin/etcd" .)
  log "built etcd in $(($(date +%s) - t0)) s"
fi

# --- kwok
if ! version_ok kwok "$KWOK_VERSION" --version; then
  t0=$(date +%s)
  log "building kwok $KWOK_VERSION"
  GOBIN="$bin" go install -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "built kwok in $(($(date +%s) - t0)) s"
fi

# --- crictl: the CRI client node-down uses to stop and remove every pod sandbox (CNI teardown included).
if ! version_ok crictl "$CRICTL_VERSION" --version; then
  t0=$(date +%s)
  log "building crictl $CRICTL_VERSION"
  GOBIN="$bin" go install -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  log "built crictl in $(($(date +%s) - t0)) s"
fi

# --- the pause (sandbox) image: Kubernetes' pause.c, static, alone in a FROM-scratch image. No registry needed.
if ! version_ok pause "$KUBERNETES_VERSION" -v || [[ "$(cat "$bin/pause.image" 2>/dev/null)" != "$PAUSE_IMAGE" ]]; then
  command -v gcc >/dev/null || { log "gcc is missing (the pause binary): apt-get install gcc libc6-dev"; exit 1; }
  pause_c="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c"
  [[ -f "$pause_c" ]] || (cd "$k8s_src" && go mod download "k8s.io/kubernetes@$KUBERNETES_VERSION")
  gcc -Os -Wall -Werror -static -DVERSION="$KUBERNETES_VERSION" -o "$bin/pause" "$pause_c"
  strip "$bin/pause" 2>/dev/null || true
  "$here/pause-image.sh" "$bin/pause" "$PAUSE_IMAGE" "$bin/pause.tar"
  echo "$PAUSE_IMAGE" >"$bin/pause.image"
  log "built the pause image $PAUSE_IMAGE ($bin/pause.tar)"
fi

if ! cached; then
  log "binaries were built but do not report the pinned versions; see $bin"
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubelet kube-proxy crictl; do "$bin/$b" --version 2>&1 | head -1 >&2 || true; done
  exit 1
fi
log "cold build finished in $(($(date +%s) - start)) s"
echo "$bin"
