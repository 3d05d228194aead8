#!/usr/bin/env bash
# What `make test` needs before it builds anything, checked at once: every missing piece named in one go, with the
# command that installs it, before the first build (which otherwise fails half an hour in).
#
#   scripts/preflight.sh     exit 0, silent, when all is there; else the missing pieces on stderr and exit 1
#
# Checked: root (the real-node tier runs real pods), Python 3.11+ with its venv module (Debian: python3-venv), Go 1.26
# or newer (Debian 12 ships 1.19: take it from go.dev), and apt-get (the node's Debian packages are installed by
# scripts/node/packages.sh), and 10 GiB free for the caches and /tmp (SHAREDVOL_NEED_FREE_GIB). make is there, since
# make runs this.
set -uo pipefail
python=${PYTHON:-python3}
missing=()
fixes=()

[[ $(id -u) -eq 0 ]] || { missing+=("root"); fixes+=("run as root (sudo make test), or run make unit as anyone"); }
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  missing+=("Python 3.11 or newer"); fixes+=("apt-get install python3 (Debian 12 has 3.11), or set PYTHON=/path/to/python3.11")
elif ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=("python3-venv"); fixes+=("apt-get install python3-venv")
fi
go_version=$(go env GOVERSION 2>/dev/null || true)  # go1.26.8
if [[ -z "$go_version" ]]; then
  missing+=("Go 1.26"); fixes+=("install Go 1.26 from https://go.dev/dl (tar -C /usr/local -xzf go1.26.*.linux-amd64.tar.gz; export PATH=/usr/local/go/bin:\$PATH)")
else
  IFS=. read -r major minor _ <<<"${go_version#go}"
  if (( major < 1 || (major == 1 && minor < 26) )); then
    missing+=("Go 1.26 (found $go_version)"); fixes+=("install Go 1.26 from https://go.dev/dl and put it first on PATH")
  fi
fi
command -v apt-get >/dev/null || { missing+=("apt-get"); fixes+=("the test tiers need Debian 12 or newer"); }
# The node's images, the test volumes and the builds need room: a nearly full disk shows up much later as pods that
# never start (the kubelet deletes images under disk pressure).
need_gib=${SHAREDVOL_NEED_FREE_GIB:-10}
for dir in "${XDG_CACHE_HOME:-$HOME/.cache}" "${TMPDIR:-/tmp}"; do
  mkdir -p "$dir" 2>/dev/null
  free_gib=$(( $(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 {print $4}') / 1048576 ))
  if (( free_gib < need_gib )); then
    missing+=("${need_gib} GiB free under $dir (found $free_gib GiB)")
    fixes+=("free disk under $dir (old /tmp/pytest-of-*/ runs, unused venvs in ~/.cache/sharedvol/venvs), or set SHAREDVOL_NEED_FREE_GIB if you know better")
  fi
done

((${#missing[@]} == 0)) && exit 0
echo "make test: missing before anything is built: $(IFS=,; echo "${missing[*]}" | sed 's/,/, /g')" >&2
for fix in "${fixes[@]}"; do echo "  - $fix" >&2; done
exit 1
