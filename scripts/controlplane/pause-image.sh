#!/usr/bin/env bash
# Package a static pause binary as a one-layer FROM-scratch image in docker-archive format (what `docker save`
# writes), so `ctr images import` and `docker load` can read it without a registry or a Docker engine.
#
#   scripts/controlplane/pause-image.sh BINARY NAME:TAG OUT.tar
set -euo pipefail

binary=$1 name=$2 out=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

install -D -m 0755 "$binary" "$work/rootfs/pause"
# A reproducible layer: fixed owner, mode and time.
tar -C "$work/rootfs" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf "$work/layer.tar" pause
layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir -p "$work/image/$layer_sha"
mv "$work/layer.tar" "$work/image/$layer_sha/layer.tar"
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"COPY pause /pause (build/pause/linux/pause.c, static)"}]}' \
  "$layer_sha" >"$work/config.json"
config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/image/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_sha" "$name" "$layer_sha" \
  >"$work/image/manifest.json"
tar -C "$work/image" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf "$out.tmp" .
mv "$out.tmp" "$out"
