#!/usr/bin/env bash
# Builds the faasnap guest kernel (an uncompressed x86_64 vmlinux) from Debian's linux-source-6.1
# package: tinyconfig + config.fragment + patches/*.patch. The result is cached at
#   ${FAASNAP_CACHE:-$HOME/.cache/faasnap}/kernel/<key>/vmlinux
# where <key> hashes the source package version, the fragment, the patches and this script, so
# any change to one of them builds a new kernel and an unchanged tree never rebuilds.
# guest/kernel/index.ts computes the same key (kernelCacheKey); keep the two in step.
#
# Usage: build.sh [--print-key | --print-path]
#   (no option)   build unless cached; the last line of stdout is the vmlinux path
#   --print-key   print the cache key and exit
#   --print-path  print where vmlinux is (or would be) and exit
# Environment:
#   FAASNAP_CACHE                 cache root (default ~/.cache/faasnap)
#   FAASNAP_LINUX_SOURCE          source tarball (default /usr/src/linux-source-6.1.tar.xz)
#   FAASNAP_LINUX_SOURCE_VERSION  its version for the key (default: from dpkg)
#   FAASNAP_KEEP_BUILD=1          keep the build tree (default: removed after a successful build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LC_ALL=C

source_pkg=linux-source-6.1
tarball="${FAASNAP_LINUX_SOURCE:-/usr/src/${source_pkg}.tar.xz}"
cache_root="${FAASNAP_CACHE:-$HOME/.cache/faasnap}"

log() { printf 'kernel: %s\n' "$*" >&2; }
die() {
  printf 'kernel: error: %s\n' "$*" >&2
  exit 1
}

source_version() {
  if [ -n "${FAASNAP_LINUX_SOURCE_VERSION:-}" ]; then
    printf '%s' "$FAASNAP_LINUX_SOURCE_VERSION"
    return
  fi
  local v
  v="$(dpkg-query -W -f='${Version}' "$source_pkg" 2>/dev/null)" ||
    die "Debian package $source_pkg is not installed (apt-get install $source_pkg)"
  [ -n "$v" ] || die "Debian package $source_pkg is not installed (apt-get install $source_pkg)"
  printf '%s' "$v"
}

# The key: the first 16 hex digits of the SHA-256 of a manifest listing the source version and
# the SHA-256 of each input file (paths relative to this directory, patches in byte order).
cache_key() {
  local version
  version="$(source_version)"
  {
    printf '%s %s\n' "$source_pkg" "$version"
    (
      cd "$here"
      shopt -s nullglob
      sha256sum config.fragment build.sh patches/*.patch
    )
  } | sha256sum | cut -c1-16
}

case "${1:-}" in
  --print-key)
    cache_key
    exit 0
    ;;
  --print-path)
    printf '%s/kernel/%s/vmlinux\n' "$cache_root" "$(cache_key)"
    exit 0
    ;;
  "") ;;
  *) die "unknown option $1 (use --print-key or --print-path)" ;;
esac

key="$(cache_key)"
out_dir="$cache_root/kernel/$key"
vmlinux="$out_dir/vmlinux"
if [ -f "$vmlinux" ]; then
  echo "$vmlinux"
  exit 0
fi

# Tools the kernel build needs, by the Debian package that provides them.
need=()
for pair in make:make gcc:gcc bc:bc bison:bison flex:flex xz:xz-utils patch:patch perl:perl; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -f /usr/include/libelf.h ] || need+=(libelf-dev)
((${#need[@]} == 0)) || die "missing build tools; apt-get install ${need[*]}"
[ -f "$tarball" ] || die "$tarball not found (apt-get install $source_pkg)"

mkdir -p "$cache_root/kernel"
# One build per key at a time; a second caller waits and then finds the result.
exec 9>"$cache_root/kernel/$key.lock"
flock 9
if [ -f "$vmlinux" ]; then
  echo "$vmlinux"
  exit 0
fi

work="$cache_root/kernel/$key.build"
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS

log "extracting $tarball into $work"
tar -xJf "$tarball" -C "$work" --strip-components=1
cd "$work"

for p in "$here"/patches/*.patch; do
  [ -e "$p" ] || continue
  log "applying $(basename "$p")"
  patch -p1 --forward --batch --quiet <"$p" || die "patch $(basename "$p") does not apply"
done

# Reproducible metadata: the version string must not differ between identical builds.
export KBUILD_BUILD_USER=faasnap KBUILD_BUILD_HOST=faasnap
KBUILD_BUILD_TIMESTAMP="$(date -u -R -d "@$(stat -c %Y "$tarball")")"
export KBUILD_BUILD_TIMESTAMP

log "configuring: tinyconfig + config.fragment"
make -s tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$here/config.fragment" >/dev/null
make -s olddefconfig >/dev/null

# Every option the fragment sets must have survived (a dependency may silently drop it).
bad=()
while IFS= read -r line; do
  if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
    grep -qxF "$line" .config || bad+=("$line (got: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" .config || echo absent))")
  elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
    if grep -qE "^${BASH_REMATCH[1]}=" .config; then bad+=("$line (got: enabled)"); fi
  fi
done <"$here/config.fragment"
if ((${#bad[@]})); then
  printf 'kernel: error: option not in the final .config: %s\n' "${bad[@]}" >&2
  exit 1
fi

log "building vmlinux with $(nproc) jobs"
make -s -j"$(nproc)" vmlinux

mkdir -p "$out_dir"
cp .config "$out_dir/config"
cp System.map "$out_dir/System.map"
cp vmlinux "$out_dir/vmlinux.tmp"
mv "$out_dir/vmlinux.tmp" "$vmlinux" # last: its presence means "built"
cd /
[ "${FAASNAP_KEEP_BUILD:-0}" = 1 ] || rm -rf "$work"
log "built in $((SECONDS - started)) s: $(stat -c %s "$vmlinux") bytes"
echo "$vmlinux"
