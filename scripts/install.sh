#!/usr/bin/env bash
# Install the sharedvol command (what `make install` runs): this checkout built and installed as a package (pip, not
# editable) with its pinned dependencies into an environment of its own, and a link to its `sharedvol` on the PATH.
#
#   scripts/install.sh     env: SHAREDVOL_HOME (default ~/.local/share/sharedvol: the environment is SHAREDVOL_HOME/venv)
#                               BIN_DIR (default /usr/local/bin as root, else ~/.local/bin: where the link goes)
#                               PYTHON (default python3: 3.11 or newer, with the venv module)
#
# Run it again after pulling: it reinstalls the package and brings the dependencies to the pins of requirements.txt.
# Uninstall: rm -rf "$SHAREDVOL_HOME" and the link.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
home=${SHAREDVOL_HOME:-$HOME/.local/share/sharedvol}
if [[ $(id -u) -eq 0 ]]; then bin_dir=${BIN_DIR:-/usr/local/bin}; else bin_dir=${BIN_DIR:-$HOME/.local/bin}; fi
venv=$home/venv
log() { printf '[install] %s\n' "$*" >&2; }

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { log "sharedvol needs Python 3.11 or newer: set PYTHON=/path/to/python3.11"; exit 1; }
if [[ ! -x "$venv/bin/pip" ]]; then
  "$python" -m venv "$venv" >/dev/null 2>&1 ||
    { log "$python cannot make a virtual environment: install python3-venv (apt-get install python3-venv)"; exit 1; }
fi
start=$(date +%s)
log "installing $root into $venv (its pinned dependencies too; torch is large the first time)"
"$venv/bin/pip" install --quiet --upgrade "pip==25.3"
# A regular (not editable) install: the environment keeps working when the checkout moves or changes. It is built
# from a copy of what the package is made of, so the build leaves nothing in the checkout.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r "$root"/{pyproject.toml,requirements.txt,README.md,sharedvol,storage,steps,pipelines} "$src"/
find "$src" -name __pycache__ -prune -exec rm -rf {} +
"$venv/bin/pip" install --quiet --progress-bar off "$src"
"$venv/bin/pip" check >/dev/null
mkdir -p "$bin_dir"
ln -sfn "$venv/bin/sharedvol" "$bin_dir/sharedvol"
version=$("$venv/bin/python" -c 'from importlib import metadata; print(metadata.version("sharedvol"))')
echo "installed sharedvol $version into $venv in $(($(date +%s) - start)) s (pip install of this checkout, not editable)"
echo "linked $bin_dir/sharedvol -> $venv/bin/sharedvol"
case ":$PATH:" in
  *":$bin_dir:"*) echo "try: sharedvol --help" ;;
  *) echo "$bin_dir is not on your PATH: add it (export PATH=\"$bin_dir:\$PATH\"), or run $bin_dir/sharedvol --help" ;;
esac
