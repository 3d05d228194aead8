#!/usr/bin/env bash
# The VM's image disk: a containerd root (namespace k8s.io) holding the sandbox image and every image of
# scripts/vm/images.sh, filled by a containerd on the host (the same Debian containerd as in the VM) and written into
# an ext4 image the VM mounts at /var/lib/containerd. Importing in the VM would cost minutes under TCG; here it is
# seconds, once. Cached by the images' content: ~/.cache/sharedvol/vm/disk-<hash>/images.img.
# Project images named after PAUSE.tar (e.g. sharedvol-provisioner:0.1.0, for k8s/fallback's DaemonSet) come from the
# local Docker engine, saved once per image id into ~/.cache/sharedvol/vm/project-<id>.tar: a new build of one makes
# a new disk (about half a minute).
#
#   scripts/vm/disk.sh PAUSE.tar [IMAGE...]     build if missing, print the image file's path
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=vm-disk
pause=$1
shift

images=$("$here/images.sh")
project=()
for image in "$@"; do
  id=$(docker image inspect -f '{{.Id}}' "$image") || { log "$image is not in the Docker engine: build it first"; exit 1; }
  tar="$cache_root/vm/project-${id#sha256:}.tar"
  if [[ ! -s "$tar" ]]; then
    log "$image: docker save ($id)"
    docker save "$image" >"$tar.tmp" && mv "$tar.tmp" "$tar"
  fi
  project+=("$tar")
done
# the project images by their ids (in the tar names): hashing their contents would cost seconds each run
key=$(cat "$here/disk.sh" "$pause" "$images"/*.tar <(printf '%s\n' "$@" "${project[@]}") | sha256sum | cut -c1-16)
dest="$cache_root/vm/disk-$key"
if [[ -s "$dest/images.img" ]]; then
  log "reusing $dest/images.img"
  echo "$dest/images.img"
  exit 0
fi
work=$(mktemp -d /var/tmp/sharedvol-vm-disk.XXXXXX)
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  mountpoint -q "$work/state" && umount -R "$work/state"
  rm -rf "$work"
}
trap cleanup EXIT
start=$(date +%s)
mkdir -p "$work/root" "$work/state"
cat >"$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
TOML
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
pid=$!
for _ in $(seq 150); do [[ -S "$work/containerd.sock" ]] && break; sleep 0.2; done
[[ -S "$work/containerd.sock" ]] || { tail -20 "$work/containerd.log" >&2; log "containerd did not start"; exit 1; }
ctr() { command ctr --address "$work/containerd.sock" -n k8s.io "$@"; }
ctr images import --snapshotter overlayfs "$pause" >/dev/null
while read -r name tar; do
  ctr images import --snapshotter overlayfs "$images/$tar" >/dev/null
  log "imported $name"
done <"$images/images.txt"
for tar in "${project[@]}"; do
  ctr images import --snapshotter overlayfs "$tar" >/dev/null
  log "imported $(basename "$tar")"
done
ctr images ls -q >"$work/names"
kill "$pid" && wait "$pid" 2>/dev/null || true
pid=
size=$(($(du -sm "$work/root" | cut -f1) * 2 + 512))
mkfs.ext4 -q -F -L sharedvol-images -d "$work/root" "$work/images.img" "${size}M" >&2
mkdir -p "$dest"
mv "$work/images.img" "$dest/images.img"
cp "$work/names" "$dest/images.txt"
log "built in $(($(date +%s) - start)) s: $dest/images.img (${size} MiB)"
# each new build of a project image makes a new disk: keep the three newest disks and saved images
find "$cache_root/vm" -maxdepth 1 -name 'disk-*' -type d -printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- |
  xargs -r rm -rf
find "$cache_root/vm" -maxdepth 1 -name 'project-*.tar' -printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- |
  xargs -r rm -f
echo "$dest/images.img"
