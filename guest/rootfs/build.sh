#!/usr/bin/env bash
# Builds a guest root filesystem image: Debian bookworm (debootstrap minbase + the variant's
# package list), our init, the guest agent and the bundled functions, turned into an ext4 image
# with `mkfs.ext4 -d` (no loop mounts) sized to ~1 % over what the tree needs (the guest mounts
# it read-only, so free space is waste).
#
#   guest/rootfs/build.sh [--force] [--keep-tree DIR] [--out FILE] small|full
#   guest/rootfs/build.sh --print-key small|full     # cache key only (guest/rootfs/index.ts)
#   guest/rootfs/build.sh --print-path small|full    # cached image path only
#
# The image is cached at ${FAASNAP_CACHE:-$HOME/.cache/faasnap}/rootfs/<variant>-<key>.ext4;
# <key> hashes every input (see rootfs_inputs), so any change to them builds a new image. The
# last line on stdout is the image path; progress goes to stderr.
# Needs root (debootstrap), debootstrap, e2fsprogs and gcc with a static libc (libc6-dev).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIRROR="${FAASNAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
CACHE="${FAASNAP_CACHE:-$HOME/.cache/faasnap}"

# Inside the image (documented in docs/guest-rootfs.md; the kernel cmdline names the init).
INIT_PATH=/sbin/faasnap-init
AGENT_DIR=/opt/faasnap/agent
FUNCTIONS_DIR=/opt/faasnap/functions

log() { printf 'rootfs: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Repo-relative paths of every file the image is built from, sorted bytewise. Keep in sync with
# rootfsInputs() in guest/rootfs/index.ts (a test compares the two keys).
rootfs_inputs() {
  {
    printf '%s\n' guest/rootfs/build.sh guest/rootfs/init.c "guest/rootfs/packages/$1.txt" \
      guest/agent/agent.py guest/agent/node-runtime.mjs
    find guest/functions -type f ! -path '*/__pycache__/*' ! -name '*.pyc'
  } | LC_ALL=C sort
}

# sha256 over "faasnap-rootfs v1 <variant>\n" followed by `sha256sum` lines of the inputs.
cache_key() {
  (
    cd "$REPO"
    {
      printf 'faasnap-rootfs v1 %s\n' "$1"
      rootfs_inputs "$1" | xargs -d '\n' sha256sum --
    } | sha256sum | cut -c1-16
  )
}

# Package names from a list file: one per line, '#' comments and blank lines ignored.
read_packages() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$' | paste -sd, -
}

# Unmounts anything debootstrap may have left mounted under $1 (before deleting it).
unmount_under() {
  local dir
  dir="$(realpath -m "$1")"
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" || true; done
}

force=0
keep_tree=""
out=""
mode=build
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --keep-tree) keep_tree="$2"; shift ;;
    --out) out="$2"; shift ;;
    --print-key) mode=key ;;
    --print-path) mode=path ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
  shift
done
variant="${1:-}"
[[ "$variant" =~ ^[a-z0-9-]+$ && -f "$REPO/guest/rootfs/packages/$variant.txt" ]] ||
  die "usage: build.sh [options] VARIANT (one of: $(cd "$REPO/guest/rootfs/packages" && ls | sed 's/\.txt$//' | paste -sd' ' -))"

key="$(cache_key "$variant")"
cached="$CACHE/rootfs/$variant-$key.ext4"
case "$mode" in
  key) echo "$key"; exit 0 ;;
  path) echo "$cached"; exit 0 ;;
esac
[ -n "$out" ] || out="$cached"
if [ -f "$out" ] && ((!force)); then
  log "$variant image is cached"
  echo "$out"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
for tool in debootstrap mkfs.ext4 e2fsck dumpe2fs debugfs gcc readelf; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap e2fsprogs gcc libc6-dev binutils)"
done

mkdir -p "$CACHE/rootfs" "$CACHE/debootstrap" "$(dirname "$out")"
work="$(mktemp -d "$CACHE/rootfs/build-$variant.XXXXXX")"
tree="$work/tree"
cleanup() {
  unmount_under "$work"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
t0=$SECONDS

packages="$(read_packages "$REPO/guest/rootfs/packages/$variant.txt")"
log "debootstrap $SUITE minbase + $packages"
# --cache-dir keeps the .debs, so a rebuild after an input change downloads nothing.
debootstrap --variant=minbase --include="$packages" --cache-dir="$CACHE/debootstrap" \
  "$SUITE" "$tree" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed (log above)"
}
t_debootstrap=$((SECONDS - t0))

log "installing init, agent and functions"
# Static and tiny: the guest's kernel code runs emulated under PVM, so every fork, exec and
# dynamic-library page of a shell-script init would cost real time.
gcc -static -Os -s -Wall -Wextra -Werror -o "$tree$INIT_PATH" "$REPO/guest/rootfs/init.c"
install -d -m 0755 "$tree$AGENT_DIR" "$tree$FUNCTIONS_DIR"
install -m 0644 "$REPO/guest/agent/agent.py" "$REPO/guest/agent/node-runtime.mjs" "$tree$AGENT_DIR/"
(cd "$REPO/guest/functions" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
  xargs -0 -I{} install -D -m 0644 {} "$tree$FUNCTIONS_DIR/{}")
# The root is read-only in the guest: byte-compile now so imports find a valid cache.
chroot "$tree" /usr/bin/python3 -m compileall -q /opt/faasnap >/dev/null

# Writable scratch lives on tmpfs (mounted by init); the paper's handlers use /dev/shm.
rm -rf "$tree/var/tmp" "$tree/usr/tmp"
ln -s /tmp "$tree/var/tmp"
ln -s /dev/shm "$tree/usr/tmp"
echo faasnap >"$tree/etc/hostname"

chroot "$tree" dpkg-query -W -f='${Package} ${Version}\n' >"$work/packages.txt"

log "trimming documentation, locales and caches"
rm -rf "$tree"/usr/share/doc/* "$tree"/usr/share/man/* "$tree"/usr/share/info/* \
  "$tree"/usr/share/lintian "$tree"/var/cache/apt/* "$tree"/var/lib/apt/lists/* \
  "$tree"/var/cache/debconf/*-old "$tree"/var/log/* "$tree"/debootstrap
find "$tree/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
# A microVM has no GPU: Mesa's DRI drivers (ffmpeg → SDL → GL pulls them in) are never loaded,
# and the LLVM (and Z3) that only they link go too, each once nothing else names its soname.
# ~450 MiB of the full image.
lib="$tree/usr/lib/x86_64-linux-gnu"
rm -rf "$lib/dri"
for prefix in libLLVM libz3; do
  for so in "$lib/$prefix"*.so.*; do
    [ -f "$so" ] && [ ! -L "$so" ] || continue
    soname="$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
    [ -n "$soname" ] || continue
    if ! grep -rlqsF --exclude="$prefix*" "$soname" "$tree/usr/lib" "$tree/usr/bin" "$tree/usr/sbin"; then
      log "dropping $(basename "$so") (used only by the GPU drivers)"
      rm -f "$lib/$prefix"*.so*
    fi
  done
done

unmount_under "$tree"
log "making the ext4 image"
t1=$SECONDS
img="$work/root.ext4"
kib=$(du -sk --one-file-system "$tree" | cut -f1)
# A read-only root needs no free inodes, no journal and no reserved blocks.
inodes=$(($(find "$tree" -xdev | wc -l) + 64))
mkfs_tree() { # <image> <size in 4 KiB blocks>
  rm -f "$1"
  truncate -s $(($2 * 4096)) "$1"
  mkfs.ext4 -q -F -b 4096 -m 0 -O ^has_journal -N "$inodes" -L faasnap-root \
    -E root_owner=0:0 -d "$tree" "$1" 2>"$work/mkfs.log"
}
field() { dumpe2fs -h "$1" 2>/dev/null | awk -F: -v f="$2" '$1 == f { gsub(/ /, "", $2); print $2 }'; }
# Generous first, to learn how many blocks the tree takes; then again at that size plus 1 %
# (mkfs.ext4 -d fails rather than guessing when a size is too small, so grow and retry).
mkfs_tree "$img" $(((kib * 13 / 10 + 65536) / 4)) || {
  cat "$work/mkfs.log" >&2
  die "mkfs.ext4 failed"
}
used=$(($(field "$img" 'Block count') - $(field "$img" 'Free blocks')))
blocks=$((used + used / 100 + 64))
for _ in 1 2 3 4 5; do
  mkfs_tree "$img.tight" "$blocks" && break
  blocks=$((blocks + blocks / 20))
done
if [ -f "$img.tight" ] && e2fsck -fn "$img.tight" >/dev/null 2>&1; then
  mv "$img.tight" "$img"
else
  log "tight image failed; keeping the generous one"
fi
e2fsck -fn "$img" >"$work/fsck.log" 2>&1 || {
  cat "$work/fsck.log" >&2
  die "the image does not check clean"
}
debugfs -R "stat $INIT_PATH" "$img" 2>/dev/null | grep -q 'Type: regular' || die "image lacks $INIT_PATH"
t_mkfs=$((SECONDS - t1))

if [ -n "$keep_tree" ]; then
  rm -rf --one-file-system "$keep_tree"
  mv "$tree" "$keep_tree"
fi
bytes=$(stat -c %s "$img")
mv "$work/packages.txt" "${out%.ext4}.packages.txt"
cat >"${out%.ext4}.json" <<EOF
{"variant":"$variant","key":"$key","bytes":$bytes,"debootstrapSeconds":$t_debootstrap,"imageSeconds":$t_mkfs,"totalSeconds":$((SECONDS - t0)),"mirror":"$MIRROR","suite":"$SUITE"}
EOF
mv "$img" "$out"
log "$variant: $((bytes / 1048576)) MiB in $((SECONDS - t0)) s (debootstrap ${t_debootstrap} s, image ${t_mkfs} s)"
echo "$out"
