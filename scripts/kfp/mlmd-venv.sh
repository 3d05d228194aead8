#!/usr/bin/env bash
# Create (once) or reuse the cached ML Metadata venv and print its path. It is separate from the
# project venv (ml-metadata 1.17.1 needs protobuf<5) and keyed by rig/kfp/requirements-mlmd.txt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
req="$root/rig/kfp/requirements-mlmd.txt"
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$({ cat "$req"; echo "python$pyver"; } | sha256sum | cut -c1-16)
cache_root=${SHAREDVOL_CACHE:-$HOME/.cache/sharedvol}
venv="$cache_root/venvs/mlmd-py$pyver-$key"
mkdir -p "$cache_root/venvs"
exec 9>"$venv.lock"
flock 9
if [[ ! -f "$venv/.complete" ]]; then
  echo "[mlmd-venv] creating $venv" >&2
  start=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --progress-bar off -r "$req" >&2
  "$venv/bin/pip" check >&2
  "$venv/bin/python" -c 'import ml_metadata.metadata_store' >&2
  touch "$venv/.complete"
  echo "[mlmd-venv] ready in $(($(date +%s) - start)) s" >&2
fi
echo "$venv"
