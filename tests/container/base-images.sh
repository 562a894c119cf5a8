#!/usr/bin/env bash
# Makes the two base images the container test builds FROM, with no registry: a Debian
# bookworm made by debootstrap, as tarballs for `docker import`, cached under
# target/container-cache (a second run takes no time; delete the directory to remake them).
#
#   build.tar    bookworm minbase + gcc, libc6-dev, ca-certificates, and this machine's Rust
#                toolchain (rustc, cargo, the std library: no docs) and crate registry, so the
#                Dockerfile's `cargo build --release --locked` finds every crate offline.
#   runtime.tar  what distroless `cc-debian12:nonroot` holds: glibc, libgcc, a passwd with
#                nonroot (65532), tzdata-free; no shell, no package manager.
#
# Prints the directory holding both. Needs root and debootstrap.
set -euo pipefail
cd "$(dirname "$0")/../.."

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
sysroot=$(rustc --print sysroot)
rust_version=$(rustc --version | awk '{print $2}')
cache=$PWD/target/container-cache
build_tar=$cache/build-rust-$rust_version.tar
runtime_tar=$cache/runtime.tar
mkdir -p "$cache"

rootfs=$cache/rootfs
ensure_rootfs() {
  [ -f "$rootfs/.complete" ] && return
  echo "== debootstrap --variant=minbase bookworm (once; a minute or two)" >&2
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  touch "$rootfs/.complete"
}

if [ ! -f "$runtime_tar" ]; then
  ensure_rootfs
  echo "== runtime base: glibc and libgcc from the debootstrap tree" >&2
  tree=$cache/runtime-tree
  rm -rf "$tree" && mkdir -p "$tree"/{etc,tmp,home/nonroot,usr/local/bin}
  # usrmerge: /lib and /lib64 are links into /usr, as in the tree the files come from.
  for l in lib lib64 bin sbin; do
    if [ -L "$rootfs/$l" ]; then cp -a "$rootfs/$l" "$tree/$l"; mkdir -p "$tree/$(readlink "$rootfs/$l")"; fi
  done
  # Every file (not directory) of the two packages the binary links against.
  for pkg in libc6 libgcc-s1; do
    sed 's|^/||' "$rootfs/var/lib/dpkg/info/$pkg:amd64.list" | while read -r f; do
      if [ -n "$f" ] && [ ! -d "$rootfs/$f" ]; then echo "$f"; fi
    done | (cd "$rootfs" && tar -cf - --no-recursion -T -) \
      | (cd "$tree" && tar -xf - --keep-directory-symlink)
  done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$tree/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$tree/etc/group"
  chmod 1777 "$tree/tmp"
  chown 65532:65532 "$tree/home/nonroot"
  tar -C "$tree" -cf "$runtime_tar.part" . && mv "$runtime_tar.part" "$runtime_tar"
  rm -rf "$tree"
fi

if [ ! -f "$build_tar" ]; then
  ensure_rootfs
  echo "== build base: bookworm + Rust $rust_version from $sysroot" >&2
  rm -f "$cache"/build-rust-*.tar
  staging=$cache/build-extra
  rm -rf "$staging" && mkdir -p "$staging/usr/local/rust/bin" "$staging/usr/local/cargo"
  cp -a "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$staging/usr/local/rust/bin/"
  cp -a "$sysroot/lib" "$staging/usr/local/rust/"
  cp -a "${CARGO_HOME:-$HOME/.cargo}/registry" "$staging/usr/local/cargo/"
  tar -C "$rootfs" --exclude=./.complete --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf "$build_tar.part" .
  tar -C "$staging" -rf "$build_tar.part" ./usr/local/rust ./usr/local/cargo
  mv "$build_tar.part" "$build_tar"
  rm -rf "$staging"
fi
# The tree is only for making the tarballs: they are what is kept.
rm -rf "$rootfs"
echo "$cache"
