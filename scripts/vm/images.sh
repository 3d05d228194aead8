#!/usr/bin/env bash
# Build the images k8s/nfs/driver and k8s/nfs/check name, without a Docker engine or a registry, as docker-archive
# tarballs in a cache keyed by their inputs (~/.cache/sharedvol/vm/images-<hash>/):
#   registry.k8s.io/sig-storage/nfsplugin:v4.13.4               base + nfs-common, mount (mount.nfs) + nfsplugin
#   registry.k8s.io/sig-storage/csi-provisioner:v6.3.0           base + the binary
#   registry.k8s.io/sig-storage/csi-resizer:v2.2.0               base + the binary
#   registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0   base + the binary
#   registry.k8s.io/sig-storage/livenessprobe:v2.19.0            base + the binary
#   busybox:1.37.0                                               Debian's busybox-static 1.37.0 alone (k8s/nfs/check)
# The base layer is a debootstrapped Debian 12 (minbase), as scripts/node/base-image.sh makes for the project's own
# images; the sidecars share it. The binaries come from scripts/vm/go-build.sh. These images carry the names
# upstream publishes under, so the manifests apply unchanged: they are built here from the same source tags.
#
#   scripts/vm/images.sh              build what is missing, print the directory (IMAGE.tar files and images.txt)
#   scripts/vm/images.sh --print-dir  print the directory, build nothing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=vm-images

gobin=$("$here/go-build.sh" --print-dir)
key=$(cat "$here/versions.env" "$here/images.sh" "$here/oci-archive.sh" <(echo "$gobin") | sha256sum | cut -c1-16)
dest="$cache_root/vm/images-$key"
only_print --print-dir "$dest" "$@"
if [[ -s "$dest/images.txt" ]]; then
  log "reusing $dest"
  echo "$dest"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "the base layer is made with debootstrap and chroot: run as root"; exit 1; }
gobin=$("$here/go-build.sh")
mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/sharedvol-vm-images.XXXXXX)
cleanup() {
  for m in "$work/merged/proc" "$work/merged"; do mountpoint -q "$m" && umount "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
start=$(date +%s)
mkdir -p "$dest.tmp"
layer() { tar -C "$1" --numeric-owner --mtime=@0 --sort=name -cf "$2" .; }

# --- the base: debootstrap minbase, without apt's lists and caches
log "base layer: debootstrap --variant=minbase $VM_SUITE (about 1.5 min)"
debootstrap --variant=minbase "$VM_SUITE" "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
rm -rf "$work"/base/var/lib/apt/lists/* "$work"/base/var/cache/apt/*.bin "$work"/base/var/cache/apt/archives/*.deb
layer "$work/base" "$work/base.tar"

# --- the plugin's packages: apt-get in an overlay on the base; the upper directory is the layer
mkdir -p "$work/upper" "$work/ovl-work" "$work/merged"
mount -t overlay overlay -o "lowerdir=$work/base,upperdir=$work/upper,workdir=$work/ovl-work" "$work/merged"
cp /etc/resolv.conf "$work/merged/etc/resolv.conf"
mount -t proc proc "$work/merged/proc"
log "plugin layer: apt-get install nfs-common mount ca-certificates netbase"
chroot "$work/merged" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends nfs-common mount ca-certificates netbase' >"$work/apt.log" 2>&1 || {
  tail -20 "$work/apt.log" >&2
  exit 1
}
rm -rf "$work"/merged/var/lib/apt/lists/* "$work"/merged/var/cache/apt/*.bin "$work"/merged/var/cache/apt/archives/*.deb
cp "$work/base/etc/resolv.conf" "$work/merged/etc/resolv.conf"
umount "$work/merged/proc" "$work/merged"
rmdir "$work/upper/proc" 2>/dev/null || true
# Files the install removed from the base are overlay whiteouts (0/0 character devices): layer whiteouts instead.
while IFS= read -r -d '' wh; do
  rm "$wh" && : >"$(dirname "$wh")/.wh.$(basename "$wh")"
done < <(find "$work/upper" -type c -print0)
layer "$work/upper" "$work/nfs-common.tar"

one() { # NAME TAR CONFIG LAYERS...
  "$here/oci-archive.sh" "$dest.tmp/$2" "$1" "$3" "${@:4}"
  echo "$1 $2" >>"$dest.tmp/images.txt"
  log "$1: $(du -h "$dest.tmp/$2" | cut -f1)"
}
binary_layer() { # PROGRAM -> a layer holding /PROGRAM
  mkdir -p "$work/bin-$1" && install -m 0755 "$gobin/$1" "$work/bin-$1/$1"
  layer "$work/bin-$1" "$work/bin-$1.tar"
  echo "$work/bin-$1.tar"
}
sig=registry.k8s.io/sig-storage
one "$sig/nfsplugin:$NFSPLUGIN_VERSION" nfsplugin.tar '{"Entrypoint":["/nfsplugin"]}' \
  "$work/base.tar" "$work/nfs-common.tar" "$(binary_layer nfsplugin)"
one "$sig/csi-provisioner:$CSI_PROVISIONER_VERSION" csi-provisioner.tar '{"Entrypoint":["/csi-provisioner"]}' \
  "$work/base.tar" "$(binary_layer csi-provisioner)"
one "$sig/csi-resizer:$CSI_RESIZER_VERSION" csi-resizer.tar '{"Entrypoint":["/csi-resizer"]}' \
  "$work/base.tar" "$(binary_layer csi-resizer)"
one "$sig/csi-node-driver-registrar:$NODE_DRIVER_REGISTRAR_VERSION" csi-node-driver-registrar.tar \
  '{"Entrypoint":["/csi-node-driver-registrar"]}' "$work/base.tar" "$(binary_layer csi-node-driver-registrar)"
one "$sig/livenessprobe:$LIVENESSPROBE_VERSION" livenessprobe.tar '{"Entrypoint":["/livenessprobe"]}' \
  "$work/base.tar" "$(binary_layer livenessprobe)"

# --- busybox:1.37.0 from Debian 13's busybox-static (Debian 12 has 1.35): apt-get download with a one-suite list
apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb $mirror $BUSYBOX_SUITE main" >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
log "busybox: apt-get download busybox-static=$BUSYBOX_DEB_VERSION ($BUSYBOX_SUITE)"
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_opts[@]}" download -qq "busybox-static=$BUSYBOX_DEB_VERSION" >&2)
dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox-deb"
bb=$work/busybox
mkdir -p "$bb/bin" "$bb/tmp" && chmod 1777 "$bb/tmp"
# /usr/bin in Debian 13 (merged /usr), /bin before
install -m 0755 "$(find "$work/busybox-deb" -path "*bin/busybox" -type f | head -1)" "$bb/bin/busybox"
for applet in $("$bb/bin/busybox" --list); do [[ -e "$bb/bin/$applet" ]] || ln "$bb/bin/busybox" "$bb/bin/$applet"; done
"$bb/bin/busybox" --list | grep -qx sh || { log "busybox from the package does not run"; exit 1; }
layer "$bb" "$work/busybox.tar"
one "busybox:$BUSYBOX_VERSION" busybox.tar '{"Cmd":["sh"]}' "$work/busybox.tar"

rm -rf "$dest" && mv "$dest.tmp" "$dest"
log "built in $(($(date +%s) - start)) s: $dest"
echo "$dest"
