#!/usr/bin/env bash
# Create (once) or reuse the cached virtual environment for this project and print its path.
# The environment lives outside the repo, keyed by the hash of the pinned requirements and the
# Python version, so every checkout with the same pins shares one multi-GB torch install.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "sharedvol needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$(cat "$root/requirements.txt" "$root/requirements-dev.txt" | { cat; echo "python$pyver"; } | sha256sum | cut -c1-16)
cache_root=${SHAREDVOL_CACHE:-$HOME/.cache/sharedvol}
venv="$cache_root/venvs/py$pyver-$key"
mkdir -p "$cache_root/venvs"
exec 9>"$venv.lock"
flock 9  # one installer at a time; the others wait and then reuse its result
if [[ ! -f "$venv/.complete" ]]; then
  echo "[venv] creating $venv (first time: downloads torch, several GB)" >&2
  start=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade "pip==25.3" >&2
  "$venv/bin/pip" install --progress-bar off -r "$root/requirements-dev.txt" >&2
  "$venv/bin/pip" check >&2
  touch "$venv/.complete"
  echo "[venv] ready in $(($(date +%s) - start)) s" >&2
fi
echo "$venv"
