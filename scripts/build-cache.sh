# Sourced by the scripts that build programs into the cache (scripts/controlplane, scripts/kfp, scripts/kfpcheck/build.sh):
# where the cache is, a log line with the build's name, the flag that prints where the result is without building,
# and the check for Go.
#
#   source "$here/../build-cache.sh"
#   log_name=NAME                log lines go to stderr as "[NAME] ..."
#   only_print FLAG PATH "$@"    the script was called with FLAG: print PATH and exit 0
#   require_go                   exit 1 with a line saying what to install when go is missing
# shellcheck shell=bash

cache_root=${SHAREDVOL_CACHE:-$HOME/.cache/sharedvol}
log_name=build

log() { printf '[%s] %s\n' "$log_name" "$*" >&2; }

only_print() {
  if [[ "${3:-}" == "$1" ]]; then
    echo "$2"
    exit 0
  fi
}

require_go() {
  command -v go >/dev/null || {
    log "go is not installed: install Go 1.26 or newer"
    exit 1
  }
}
