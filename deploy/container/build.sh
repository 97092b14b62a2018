#!/usr/bin/env bash
# Builds the xdp-pipeline OCI image from Debian 12 packages only, with no other registry: the executable,
# the built-in plugins and BPF objects (cmake --install of BUILD_DIR), and the Debian packages that hold
# the shared libraries they load, with those packages' own dependencies; nothing else (no shell tools,
# no apt). The root filesystem is made by mmdebstrap from the Debian mirror and imported with podman.
#
#   deploy/container/build.sh BUILD_DIR [--tag NAME:TAG] [--rootfs FILE.tar]
#
# Default tag: localhost/xdp-pipeline:VERSION (VERSION from CMakeLists.txt's project()). Root only.
# Reproducible: SOURCE_DATE_EPOCH (default: the last commit's time) fixes every timestamp mmdebstrap
# writes, the installed files get that mtime, and logs, caches, machine-id and apt lists are removed, so
# the same sources and the same mirror state give the same rootfs tar, byte for byte (the test checks
# this by building twice). podman import stamps the image config with the import time; the layer (the
# tar) is what is reproducible.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: $0 BUILD_DIR [--tag NAME:TAG] [--rootfs FILE.tar]}
build=$(cd "$build" && pwd)
shift
version=$(sed -n 's/^project(xdp-pipeline VERSION \([0-9.]*\).*/\1/p' "$here/CMakeLists.txt")
tag=localhost/xdp-pipeline:$version
rootfs=
while (($#)); do
  case $1 in
  --tag) tag=$2; shift 2 ;;
  --rootfs) rootfs=$2; shift 2 ;;
  *) echo "build.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "build.sh: needs root (mmdebstrap, podman)" >&2; exit 1; }
for tool in mmdebstrap podman dpkg-query; do
  command -v "$tool" >/dev/null || { echo "build.sh: '$tool' not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}

work=$(mktemp -d /tmp/xdpp-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
DESTDIR=$stage cmake --install "$build" --prefix /usr/local >/dev/null
# What runs: the executable and LIBDIR/xdp-pipeline (plugins, BPF objects); not the SDK (headers, CMake
# package, Python helper) nor the docs and the systemd unit.
rm -rf "$stage/usr/local/include" "$stage/usr/local/share" "$stage/usr/local/lib/systemd" "$stage/usr/local/lib/cmake" "$stage"/usr/local/lib/*.a
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# The Debian packages whose shared libraries the executable and the plugins load (ldd), by file owner.
mapfile -t objects < <(find "$stage" -type f \( -name xdp-pipeline -o -name '*.so' \))
packages=$(for o in "${objects[@]}"; do ldd "$o"; done | awk '$3 ~ /^\// { print $3 }' | sort -u |
  while read -r lib; do dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null || dpkg-query -S "$lib"; done |
  cut -d: -f1 | sort -u | paste -sd, -)
[[ -n $packages ]] || { echo "build.sh: found no runtime packages (is $build built?)" >&2; exit 1; }
echo "build.sh: runtime packages: $packages" >&2

out=${rootfs:-$work/rootfs.tar}
# extract: only these packages and what they depend on, unpacked (no maintainer scripts to run: they are
# libraries, found by the loader in the multiarch directories without an ld.so.cache); no Essential set,
# no apt, no shell. From this host's apt sources (the Debian mirror).
root=$work/rootfs
mmdebstrap --quiet --variant=extract --include="$packages" --mode=root --format=directory bookworm "$root" >&2
mkdir -p "$root/usr/local" "$root/etc/xdp-pipeline" "$root/run/xdp-pipeline" "$root/sys/fs/bpf" "$root/proc" "$root/dev" "$root/tmp"
cp -a "$stage/usr/local/bin" "$stage/usr/local/lib" "$root/usr/local/"
rm -rf "$root"/var/cache/* "$root"/var/log/* "$root"/var/lib/apt "$root"/etc/machine-id "$root"/usr/share/doc \
  "$root"/usr/share/man "$root"/usr/share/lintian
chmod 1777 "$root/tmp"
# A tar that depends only on the files: sorted names, one clamped time, numeric root ownership, no atime/ctime.
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --owner=0 --group=0 --numeric-owner \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$out" -C "$root" .
podman import --quiet \
  --change 'ENTRYPOINT ["/usr/local/bin/xdp-pipeline"]' \
  --change 'CMD ["run", "/etc/xdp-pipeline/pipeline.toml", "--watch"]' \
  --change "LABEL org.opencontainers.image.version=$version" \
  --change 'LABEL org.opencontainers.image.title=xdp-pipeline' \
  "$out" "$tag" >/dev/null
echo "$tag"
