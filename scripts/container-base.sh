#!/usr/bin/env bash
# Makes the base image of ovm's container test without pulling from a registry (this CI cannot
# reach one): a Debian bookworm rootfs by debootstrap from Debian's archive, with the packages a
# build needs inside a container, saved as a tarball for `podman import`.
#
#   .cache/container/ovm-base-bookworm.tar        the rootfs (cached: reruns only check it)
#   .cache/container/ovm-base-bookworm.packages   the package list it was made with; when the
#                                                  Containerfile's list changes, it is made again
#
# The package list is the one the Containerfile installs (its OVM_PACKAGES line); tests/
# container_podman.rs checks that the two agree, so a container built from the pinned registry
# image and one imported from this tarball hold the same tools. The tarball is written under a
# temporary name and renamed, so an interrupted run never leaves a half rootfs under the real name.
# Needs root (debootstrap) and the network to Debian's archive, once.
set -euo pipefail
cd "$(dirname "$0")/.."

out=.cache/container/ovm-base-bookworm.tar
made_with=.cache/container/ovm-base-bookworm.packages
mirror=${OVM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The Containerfile's list, so the two cannot drift apart silently.
packages=$(sed -n 's/^ARG OVM_PACKAGES="\(.*\)"$/\1/p' Containerfile)
if [ -z "$packages" ]; then
  echo "container-base: no ARG OVM_PACKAGES=\"...\" line in Containerfile" >&2
  exit 1
fi
if [ -s "$out" ] && [ "$(cat "$made_with" 2>/dev/null)" = "$packages" ]; then
  echo "container-base: $out present"
  exit 0
fi
if [ -s "$out" ]; then
  echo "container-base: $out was made with another package list; making it again"
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "container-base: debootstrap needs root; run scripts/setup.sh as root (or with sudo)" >&2
  exit 1
fi

mkdir -p .cache/container
work=$(mktemp -d .cache/container/.rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "container-base: debootstrap bookworm (minbase + ${packages// /,}) from $mirror"
debootstrap --variant=minbase --include="${packages// /,}" bookworm "$work/root" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "container-base: debootstrap failed (full log above was $work/debootstrap.log)" >&2
  exit 1
}
# What a registry image also drops: apt lists and caches (the Containerfile's RUN cleans the same).
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin "$work/root/var/cache/apt/archives/"*.deb
tar --numeric-owner --xattrs -C "$work/root" -cf "$work/base.tar" .
echo "$packages" >"$work/packages"
mv "$work/base.tar" "$out"
mv "$work/packages" "$made_with"
echo "container-base: wrote $out ($(du -h "$out" | cut -f1))"
