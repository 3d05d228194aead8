#!/usr/bin/env bash
# Install the Debian packages a real node needs, when any is missing (needs root: apt-get).
#
#   scripts/node/packages.sh           install what is missing, print nothing else on success
#   scripts/node/packages.sh --check   exit 1 and name the missing packages, install nothing
#
# containerd (with its CRI plugin) and runc run the pods; containernetworking-plugins gives the CNI bridge,
# host-local, loopback, portmap and firewall plugins; iptables is for kube-proxy and the CNI; docker.io builds
# images; debootstrap makes the base image without a registry; gcc and libc6-dev build the static pause binary;
# chromium renders the metrics report in its screenshot test (tests/host/test_report_in_chromium.py).
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack docker.io debootstrap gcc libc6-dev chromium)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ "${1:-}" == "--check" ]]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "[node] missing Debian packages: ${missing[*]}; a real node needs root: run as root or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "[node] apt-get not found: the real node is made from Debian packages (Debian 12 or newer)" >&2; exit 1; }
echo "[node] installing Debian packages: ${missing[*]}" >&2
t0=$(date +%s)
DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
echo "[node] installed in $(($(date +%s) - t0)) s" >&2
