#!/usr/bin/env bash
# Build the Kubeflow Trainer and JobSet controllers from the Go module proxy, and render their manifests offline.
#
#   scripts/trainer/build.sh              build and render if missing, print the cache directory
#   scripts/trainer/build.sh --manifests  render the manifests only (no Go build: what the control-plane tests need)
#   scripts/trainer/build.sh --print-dir  print the cache directory, build nothing
#
# The cache directory, ~/.cache/sharedvol/trainer/<hash of this script, versions.env, overlays/ and the Go version>:
#   bin/trainer-controller-manager, bin/jobset-controller   static binaries (CGO off), built under nice -n 10
#   manifests/trainer-crds.yaml, manifests/jobset-crds.yaml the CustomResourceDefinitions alone
#   manifests/trainer.yaml, manifests/jobset.yaml           everything else each controller needs (namespace, RBAC,
#                                                           webhooks, the Deployment with the image of versions.env)
#   manifests/runtimes.yaml                                 the torch-distributed ClusterTrainingRuntime
# Rendered with the cached kubectl's `kubectl kustomize` (scripts/controlplane/build.sh) from the manifests inside the
# module zips; the parts that point at a release URL (Trainer's third-party/jobset) are left out: JobSet's own
# config/default is rendered instead. Neither needs cert-manager: both controllers make their webhook certificates.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=trainer

gover=$(command -v go >/dev/null && go env GOVERSION || echo none)
key=$( (cat "$here/build.sh" "$here/versions.env" "$here"/overlays/*/*; echo "$gover") | sha256sum | cut -c1-16)
dest="$cache_root/trainer/${TRAINER_VERSION}_jobset-${JOBSET_VERSION}_$key"
bin="$dest/bin"
out="$dest/manifests"
only_print --print-dir "$dest" "$@"

manifests_only=false
[[ "${1:-}" == --manifests ]] && manifests_only=true
rendered=(trainer-crds.yaml trainer.yaml jobset-crds.yaml jobset.yaml runtimes.yaml)
cached() {
  local f
  for f in "${rendered[@]}"; do [[ -s "$out/$f" ]] || return 1; done
  $manifests_only || [[ -x "$bin/trainer-controller-manager" && -x "$bin/jobset-controller" ]]
}

if cached; then
  log "reusing $dest"
  echo "$dest"
  exit 0
fi

require_go
kubectl="$("$here/../controlplane/build.sh")/kubectl"
start=$(date +%s)
mkdir -p "$bin" "$out" "$dest/src"
rm -f "$out"/*.yaml # rendered last: present only when complete
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

module_dir() { # $1 module@version: download it (the proxy) and print where its files are
  (cd "$dest/src" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
}

build() { # $1 name, $2 package@version
  [[ -x "$bin/$1" ]] && return 0
  local t0
  t0=$(date +%s)
  log "building $1 from $2 (3-16 min cold on 2 shared cores; seconds from Go's build cache)"
  GOBIN="$dest/src/gobin" nice -n 10 go install -ldflags "-s -w" "$2"
  mv "$dest/src/gobin/$(basename "${2%@*}")" "$bin/$1"
  log "built $1 in $(($(date +%s) - t0)) s"
}
# JobSet through a one-line wrapper module: `go install sigs.k8s.io/jobset@v0.8.2` asks the proxy for the module's
# version list (for deprecation notices), which the proxy refuses for JobSet; a plain requirement needs no list.
build_jobset() {
  [[ -x "$bin/jobset-controller" ]] && return 0
  local t0 src="$dest/src/jobset-build"
  t0=$(date +%s)
  log "building jobset-controller from $JOBSET_MODULE@$JOBSET_VERSION (3-16 min cold on 2 shared cores; seconds from Go's build cache)"
  mkdir -p "$src"
  printf 'module sharedvol.local/jobset\n\ngo 1.24.0\n\nrequire %s %s\n' "$JOBSET_MODULE" "$JOBSET_VERSION" >"$src/go.mod"
  (cd "$src" && nice -n 10 go build -mod=mod -ldflags "-s -w" -o "$bin/jobset-controller" "$JOBSET_MODULE")
  log "built jobset-controller in $(($(date +%s) - t0)) s"
}
if ! $manifests_only; then
  build trainer-controller-manager "$TRAINER_MODULE/cmd/trainer-controller-manager@$TRAINER_VERSION"
  build_jobset
fi

# The module cache is read-only: render from writable copies, with sharedvol's overlays beside upstream's.
trainer_src="$dest/src/trainer-manifests" jobset_src="$dest/src/jobset-config"
rm -rf "$trainer_src" "$jobset_src"
cp -r "$(module_dir "$TRAINER_MODULE@$TRAINER_VERSION")/manifests" "$trainer_src"
cp -r "$(module_dir "$JOBSET_MODULE@$JOBSET_VERSION")/config" "$jobset_src"
chmod -R u+w "$trainer_src" "$jobset_src"
for o in trainer trainer-crds runtimes; do cp -r "$here/overlays/$o" "$trainer_src/overlays/sharedvol-$o"; done
for o in jobset jobset-crds; do cp -r "$here/overlays/$o" "$jobset_src/sharedvol-$o"; done
cp "$trainer_src/base/runtimes/torch_distributed.yaml" "$trainer_src/overlays/sharedvol-runtimes/"
sed -i "s|@TRAINER_IMAGE_NAME@|${TRAINER_IMAGE%:*}|; s|@TRAINER_IMAGE_TAG@|${TRAINER_IMAGE##*:}|" \
  "$trainer_src/overlays/sharedvol-trainer/kustomization.yaml"
sed -i "s|@JOBSET_IMAGE_NAME@|${JOBSET_IMAGE%:*}|; s|@JOBSET_IMAGE_TAG@|${JOBSET_IMAGE##*:}|" \
  "$jobset_src/sharedvol-jobset/kustomization.yaml"
"$kubectl" kustomize "$trainer_src/overlays/sharedvol-trainer-crds" >"$out/trainer-crds.yaml"
"$kubectl" kustomize "$trainer_src/overlays/sharedvol-trainer" >"$out/trainer.yaml"
"$kubectl" kustomize "$trainer_src/overlays/sharedvol-runtimes" >"$out/runtimes.yaml"
"$kubectl" kustomize "$jobset_src/sharedvol-jobset-crds" >"$out/jobset-crds.yaml" 2> >(grep -v patchesStrategicMerge >&2)
# JobSet's config/default still uses patchesStrategicMerge: kustomize's deprecation notice is not ours to fix.
"$kubectl" kustomize "$jobset_src/sharedvol-jobset" >"$out/jobset.yaml" 2> >(grep -v patchesStrategicMerge >&2)

cached || { log "the build finished but $dest is incomplete"; exit 1; }
log "built and rendered in $(($(date +%s) - start)) s"
echo "$dest"
