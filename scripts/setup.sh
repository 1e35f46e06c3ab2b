#!/usr/bin/env bash
# Installs the Debian packages onebit's build and tests need, when they are missing:
#   clang, lld               - compile the WebAssembly kernels (npm run build:kernels)
#   wabt                     - wasm-objdump, used by tests that list a module's opcodes
#   binutils                 - objdump, used by the test that disassembles the native float-free kernels
#   dataset-fashion-mnist    - the real data set the demo and some tests train on
#   redis-server             - the queue server the sweep tests start (onebit sweep --queue / onebit worker)
#   chromium                 - the browser the browser tests drive headless (with the playwright-core package)
# Safe to run again; does nothing when everything is present.
set -euo pipefail
needed=(clang lld wabt binutils dataset-fashion-mnist redis-server chromium)
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
