#!/usr/bin/env bash
# Headless-Chromium end-to-end test of the chat page of `recur serve`.
#
# Usage: .ci/chat_page_test.sh URL SCREENSHOT.png
#   URL         a running `recur serve`, e.g. http://127.0.0.1:8944/
#   SCREENSHOT  where to save the full-page screenshot
#
# Installs what is missing: Debian's chromium (apt-get), and PyPI's
# playwright wheel, for the Node.js and playwright-core it carries, into a
# venv under $RECUR_PW_PREFIX (default ${TMPDIR:-/tmp}/recur-pw; nothing is
# written inside the repository). Then runs .ci/chat_page.mjs.
# CHROMIUM=/path/to/chromium picks another browser binary.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 URL SCREENSHOT.png" >&2
  exit 2
fi
url=$1
shot=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "chat_page_test: $*"; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Chromium.
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  say "installing chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! sudo_if_needed apt-get install -y --no-install-recommends chromium; then
    say "install failed; running apt-get update and trying again"
    sudo_if_needed apt-get update
    sudo_if_needed apt-get install -y --no-install-recommends chromium
  fi
fi
[ -x "$chromium" ] || { echo "chat_page_test: no chromium at $chromium" >&2; exit 1; }
say "browser: $("$chromium" --version 2>/dev/null || echo "$chromium")"

# 2. Node and playwright-core, both from PyPI's playwright wheel, which
# carries its own Node.js and playwright-core: no Node.js from apt or npm,
# whose packages a machine's apt state can refuse (it did, on a CI run).
prefix=${RECUR_PW_PREFIX:-${TMPDIR:-/tmp}/recur-pw}
if [ ! -x "$prefix/node" ] || [ ! -f "$prefix/node_modules/playwright-core/package.json" ]; then
  say "installing playwright (PyPI; its Node.js and playwright-core) into $prefix"
  mkdir -p "$prefix/node_modules"
  python3 -m venv "$prefix/venv"
  "$prefix/venv/bin/pip" install --quiet --disable-pip-version-check 'playwright>=1.40,<2'
  driver=$("$prefix/venv/bin/python" -c 'import os, playwright; print(os.path.join(os.path.dirname(playwright.__file__), "driver"))')
  ln -sfn "$driver/node" "$prefix/node"
  ln -sfn "$driver/package" "$prefix/node_modules/playwright-core"
fi
node="$prefix/node"
say "node $("$node" --version), playwright-core $("$node" -p "require('$prefix/node_modules/playwright-core/package.json').version")"

# 3. The test.
mkdir -p "$(dirname "$shot")"
say "running chat_page.mjs against $url"
CHROMIUM=$chromium PLAYWRIGHT_PREFIX=$prefix "$node" "$here/chat_page.mjs" "$url" "$shot"
