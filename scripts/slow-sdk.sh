#!/usr/bin/env bash
# The SDK follows the image (slow tier, never run by CI: it builds the gcc cross toolchain, ~15 min
# on two cores). From an empty copy of this project's inputs, offline, with the default toolchain
# (gcc) and an image of busybox and zlib (`[pack] packages`):
#   1. `ovm build --sandbox HOST zlib`: the gcc toolchain, the build tools, zlib;
#   2. `ovm toolchain HOST --sdk`: the SDK, whose sysroot must hold zlib's runtime and -dev parts
#      (zlib.h, libz.a, zlib.pc) and not its -doc (the man page);
#   3. the SDK unpacked in a directory of its own, outside ovm and its sandbox: a program using
#      zlib compiled and linked with the SDK's gcc after `. environment-setup`, and run.
#
# usage: scripts/slow-sdk.sh
#   MIRROR=dir  sources mirror (default: this repository's sources/, filled by `ovm download`)
#   KEEP=1      keep the scratch project and the unpacked SDK
set -euo pipefail

# shellcheck source=scripts/slow-common.sh
. "$(dirname "$0")/slow-common.sh"
slow_project slow-sdk
elsewhere=$(mktemp -d "${TMPDIR:-/tmp}/ovm-sdk-elsewhere-XXXX")
on_exit "$elsewhere"
grep -q '^kind = "gcc"$' "$work/config/ovm.toml" || { echo "slow-sdk: the default toolchain is not gcc" >&2; exit 1; }
sed -i 's/^packages = \["busybox"\]$/packages = ["busybox", "zlib"]/' "$work/config/ovm.toml"
grep -q '^packages = \["busybox", "zlib"\]$' "$work/config/ovm.toml" || { echo "slow-sdk: no [pack] packages line" >&2; exit 1; }
off() { OVM_MIRRORS="$MIRROR" unshare --net -- "$ovm" -C "$work" "$@"; }

phase "ovm build --sandbox $host zlib (gcc toolchain, build tools, zlib)"
off build --sandbox "$host" zlib
phase "ovm toolchain $host --sdk"
off toolchain "$host" --sdk
sdk="$work/output/$host/ovm-sdk-$host.tar.gz"
[ -f "$sdk" ] || fail "$sdk was not written"
ls -l "$sdk"

phase "the SDK's sysroot"
sysroot="ovm-sdk-$host/$host-linux-musl/sys-root"
list=$(tar -tzf "$sdk")
for f in usr/include/zlib.h usr/include/zconf.h usr/lib/libz.a usr/lib/pkgconfig/zlib.pc; do
  grep -qx "$sysroot/$f" <<<"$list" || fail "$f is not in the SDK's sysroot"
  echo "  $f"
done
if grep -q "$sysroot/usr/share/man/" <<<"$list"; then fail "zlib-doc's man page is in the SDK"; fi

phase "unpacked in $elsewhere, compiled and run outside ovm"
tar -xzf "$sdk" -C "$elsewhere"
cat >"$elsewhere/zround.c" <<'EOF2'
#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(void) {
	const char in[] = "the SDK follows the image, the SDK follows the image";
	unsigned char z[256], back[256];
	uLongf zn = sizeof z, bn = sizeof back;
	if (compress(z, &zn, (const Bytef *)in, sizeof in) != Z_OK) return 1;
	if (uncompress(back, &bn, z, zn) != Z_OK || memcmp(back, in, sizeof in)) return 2;
	printf("zlib %s from the SDK: %zu -> %lu bytes and back\n", zlibVersion(), sizeof in, (unsigned long)zn);
	return 0;
}
EOF2
(
  cd "$elsewhere"
  # shellcheck disable=SC1090
  . "ovm-sdk-$host/environment-setup"
  echo "  CC=$CC ($(command -v "$CC"))"
  "$CC" -static -O2 -o zround zround.c -lz
)
file -b "$elsewhere/zround"
out=$("$elsewhere/zround") || fail "zround failed"
echo "  $out"
case "$out" in "zlib 1.2.13 from the SDK: "*) ;; *) fail "unexpected output: $out" ;; esac
phase "PASS"
