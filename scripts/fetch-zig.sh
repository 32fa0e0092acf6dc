#!/usr/bin/env bash
# Puts the pinned zig toolchain (PyPI's ziglang wheel: a static zig with clang/LLD 19 and musl) into
# .cache/assets/ziglang-VERSION/, unpacked, for the toolchain tests. ovm itself fetches the same wheel
# through its recipe; this copy exists so tests do not depend on a previous `ovm` run.
# Idempotent; verifies the sha256; unpacks into a temp dir and renames, so an interrupted run never
# leaves a half-unpacked toolchain under the real name.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.14.1
WHEEL=ziglang-$VERSION-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl
URL=https://files.pythonhosted.org/packages/9d/ef/494f128ea7ec3345850bbd75d2cb7b987006fb5601c37543e8fa83e5e3d4/$WHEEL
SHA256=6eb9d4d759b292c83810dbee2e9e8e3fbfbf01d864e6e9811bae711fd74e1c2f

if [ "$(uname -m)" != x86_64 ]; then
  echo "fetch-zig: only the x86_64 wheel is pinned; this host is $(uname -m)" >&2
  exit 1
fi

assets=.cache/assets
dest=$assets/ziglang-$VERSION
if [ -x "$dest/ziglang/zig" ] && [ -f "$dest/ziglang-$VERSION.dist-info/RECORD" ]; then
  echo "fetch-zig: $dest present"
  exit 0
fi
mkdir -p "$assets"
wheel=$assets/$WHEEL
if ! echo "$SHA256  $wheel" | sha256sum -c --status 2>/dev/null; then
  echo "fetch-zig: downloading $WHEEL"
  curl -fsSL --retry 3 -C - -o "$wheel.part" "$URL"
  echo "$SHA256  $wheel.part" | sha256sum -c --quiet
  mv "$wheel.part" "$wheel"
fi
tmp=$(mktemp -d "$assets/.unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unzip -q "$wheel" -d "$tmp"
chmod 0755 "$tmp/ziglang/zig"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
rm -f "$wheel"
echo "fetch-zig: unpacked zig $VERSION into $dest"
