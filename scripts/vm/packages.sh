#!/usr/bin/env bash
# Install the Debian packages the second node (a QEMU VM) needs on the host, when any is missing (root: apt-get):
# qemu-system-x86 (software emulation, TCG), debootstrap and e2fsprogs (the root disk), cpio (the initramfs),
# containerd (fills the VM's image disk), iproute2 (the bridge and tap).
set -euo pipefail

packages=(qemu-system-x86 debootstrap e2fsprogs cpio containerd iproute2 iptables zstd xz-utils)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "[vm] missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "[vm] installing Debian packages: ${missing[*]}" >&2
t0=$(date +%s)
DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sharedvol-vm-apt.log 2>&1 || {
  tail -20 /tmp/sharedvol-vm-apt.log >&2
  exit 1
}
echo "[vm] installed in $(($(date +%s) - t0)) s" >&2
