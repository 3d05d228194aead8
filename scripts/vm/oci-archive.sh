#!/usr/bin/env bash
# Write a docker-archive image (what `docker save` writes; `ctr images import` and `docker load` read it) from layer
# tarballs, without an engine or a registry.
#
#   scripts/vm/oci-archive.sh OUT.tar NAME:TAG CONFIG_JSON LAYER.tar...
#
# CONFIG_JSON is the image's "config" object (Entrypoint, Env, User...). Layers go bottom first; one that another
# image shares keeps its digest, so containerd stores it once.
set -euo pipefail

out=$1 name=$2 config=$3
shift 3
work=$(mktemp -d "${out%/*}/.archive.XXXXXX")
trap 'rm -rf "$work"' EXIT
diff_ids=() paths=()
for layer in "$@"; do
  sha=$(sha256sum "$layer" | cut -d' ' -f1)
  mkdir -p "$work/$sha"
  ln "$layer" "$work/$sha/layer.tar" 2>/dev/null || cp "$layer" "$work/$sha/layer.tar"
  diff_ids+=("\"sha256:$sha\"")
  paths+=("\"$sha/layer.tar\"")
done
join() { local IFS=,; echo "$*"; }
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]}}' \
  "$config" "$(join "${diff_ids[@]}")" >"$work/config.json"
config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]' "$config_sha" "$name" "$(join "${paths[@]}")" \
  >"$work/manifest.json"
tar -C "$work" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf "$out.tmp" .
mv "$out.tmp" "$out"
