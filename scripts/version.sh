#!/usr/bin/env bash
# Print sharedvol's version, the tag of its images: read from sharedvol/version.py, the one place it is written.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' "$root/sharedvol/version.py")
[[ -n "$version" ]] || { echo "scripts/version.sh: no VERSION = \"...\" line in sharedvol/version.py" >&2; exit 1; }
echo "$version"
