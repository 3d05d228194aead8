#!/usr/bin/env bash
# Build the second node's VM: Debian's kernel (apt-get download + dpkg-deb -x), an initramfs (busybox-static and the
# root disk's modules) and a debootstrapped Debian 12 root disk with containerd, runc, the CNI plugins, iptables and
# nfs-common (the kernel NFS client's mount.nfs). Cached in ~/.cache/sharedvol/vm/<hash of the inputs>/:
#   vmlinuz  initrd.gz  root.img (ext4, 2 GiB sparse; the VM runs with -snapshot, so it is never written)
#
#   scripts/vm/rootfs.sh              build if missing, print the directory
#   scripts/vm/rootfs.sh --print-dir  print the directory, build nothing
#
# Needs root (debootstrap, chroot). Debian packages on the host: scripts/vm/packages.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=vm-rootfs

key=$(cat <(grep "^VM_" "$here/versions.env") "$here/rootfs.sh" "$here/guest/"* | sha256sum | cut -c1-16)
dest="$cache_root/vm/rootfs-$key"
only_print --print-dir "$dest" "$@"
if [[ -s "$dest/vmlinuz" && -s "$dest/initrd.gz" && -s "$dest/root.img" ]]; then
  log "reusing $dest"
  echo "$dest"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "the VM's root disk is made with debootstrap and chroot: run as root"; exit 1; }
"$here/packages.sh"

mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
[[ -n "$mirror" ]] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/sharedvol-vm.XXXXXX)
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT  # || true: under set -e a failed umount (proc already unmounted) would make a good build exit 1
start=$(date +%s)

# --- the kernel
log "kernel: apt-get download $VM_KERNEL_PACKAGE"
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$VM_KERNEL_PACKAGE" >&2)
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
kver=$(ls "$work/kernel/lib/modules")
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

# --- the root file system
packages=nfs-common,iproute2,busybox-static,kmod,procps,tini,containerd,runc,containernetworking-plugins,iptables
packages+=,conntrack,ca-certificates,util-linux,mount,netbase
log "debootstrap --variant=minbase $VM_SUITE from $mirror (about 2-3 min)"
t0=$(date +%s)
debootstrap --variant=minbase --include="$packages" "$VM_SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
}
log "debootstrap took $(($(date +%s) - t0)) s"
root=$work/root
cp -a "$work/kernel/lib/modules" "$root/lib/"
chroot "$root" depmod "$kver"
install -m 0755 "$here/guest/sharedvol-init" "$root/sbin/sharedvol-init"
# Debian's iptables defaults to the nft backend; kube-proxy and the CNI plugins work with either, the legacy one
# needs fewer modules.
chroot "$root" update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
chroot "$root" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# containerd's images live on a second disk (scripts/vm/images.sh), mounted at /var/lib/containerd.
rm -rf "$root/var/lib/containerd" && mkdir -p "$root/var/lib/containerd"

# --- the initramfs: busybox and the modules of the root disk
ird=$work/initrd
mkdir -p "$ird"/{bin,proc,sys,dev,modules}
cp "$root/bin/busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk crc16 crc32c_generic \
  mbcache jbd2 ext4; do
  f=$(find "$root/lib/modules/$kver" -name "$m.ko*" | head -1)
  [[ -n "$f" ]] || { log "module $m is missing from $kver"; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" >"$ird/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$ird/modules/$m.ko" ;;
    *) cp "$f" "$ird/modules/" ;;
  esac
done
install -m 0755 "$here/guest/initramfs-init" "$ird/init"
mknod -m 600 "$ird/dev/console" c 5 1
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -9) >"$work/initrd.gz"

log "root disk: mkfs.ext4 -d (2 GiB, sparse)"
mkfs.ext4 -q -F -L sharedvol-vm -d "$root" "$work/root.img" 2G >&2
mkdir -p "$dest"
mv "$work/vmlinuz" "$work/initrd.gz" "$work/root.img" "$dest/"
echo "$kver" >"$dest/kernel.version"
log "built in $(($(date +%s) - start)) s: $dest"
echo "$dest"
