#!/usr/bin/env bash
# Make the step image's base, debian:bookworm-slim, without a registry: debootstrap a minimal Debian bookworm
# from the mirror apt already uses and `docker import` it under that name. Skipped when the engine already has an
# image of that name (a pulled one or an earlier import).
#
#   scripts/node/base-image.sh [NAME]     default NAME: debian:bookworm-slim
#
# Needs root (debootstrap), debootstrap and a Docker engine.
set -euo pipefail

name=${1:-debian:bookworm-slim}
log() { printf '[base-image] %s\n' "$*" >&2; }

if docker image inspect "$name" >/dev/null 2>&1; then
  log "$name is already in the engine"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "debootstrap needs root: run as root, or docker pull $name"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is missing: scripts/node/packages.sh installs it"; exit 1; }

# The mirror apt is configured with (deb822 or one-line sources), so the base installs from where apt does.
mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
[[ -n "$mirror" ]] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/sharedvol-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
t0=$(date +%s)
log "debootstrap --variant=minbase bookworm from $mirror (about 1.5 min)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2
  log "debootstrap failed; full log: $root.log"
  exit 1
}
rm -f "$root.log"
# What a slim image leaves out: the package lists and caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
log "debootstrap took $(($(date +%s) - t0)) s; importing as $name"
t1=$(date +%s)
tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$name" >/dev/null
log "imported in $(($(date +%s) - t1)) s"
