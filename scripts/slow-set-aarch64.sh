#!/usr/bin/env bash
# The package set of tests/e2e/e2e_set.rs for aarch64 (slow tier, not run by CI: a second
# architecture's cold build of the whole set, and an aarch64 guest under TCG). From an empty copy
# of this project's inputs, offline, zig toolchain, strict sandbox:
#   1. `ovm build --sandbox aarch64` with the set in `[pack] packages`;
#   2. every ELF file of the image is an aarch64 program, static and stripped;
#   3. `ovm boot aarch64 --append ovm.test=3`: rootfs/init runs the set's tools in the guest
#      (lz4, mke2fs/e2fsck/blkid, mount, dropbearkey and an SSH login, dmsetup) and must print
#      `OVM-SET-PASS aarch64`.
#
# usage: scripts/slow-set-aarch64.sh
#   MIRROR=dir  sources mirror (default: this repository's sources/, filled by `ovm download`)
#   KEEP=1      keep the scratch project
set -euo pipefail

# shellcheck source=scripts/slow-common.sh
. "$(dirname "$0")/slow-common.sh"
slow_project slow-set-aarch64
# The kernels scripts/fetch-test-assets.sh put under .cache/test-assets.
mkdir -p "$work/.cache"
ln -s "$root/.cache/test-assets" "$work/.cache/test-assets"
set_line=$(grep '^packages = \[' "$root/tests/fixtures/package-set.toml")
sed -i 's/^kind = "gcc"$/kind = "zig"/; s/^packages = \["busybox"\]$/'"$set_line"'/' "$work/config/ovm.toml"
grep -qxF "$set_line" "$work/config/ovm.toml" || { echo "slow-set-aarch64: no [pack] packages line" >&2; exit 1; }

phase "ovm build --sandbox aarch64 (${set_line#packages = })"
OVM_MIRRORS="$MIRROR" unshare --net -- "$ovm" -C "$work" build --sandbox aarch64
ls -l "$work/output/aarch64/initrd.cpio.gz"

phase "every ELF of the image: aarch64, static, stripped"
check_elves "ARM aarch64" 8 "$work"/staging/aarch64/*/runtime

phase "ovm boot aarch64 --append ovm.test=3"
out=$("$ovm" -C "$work" boot aarch64 --append ovm.test=3 --expect "OVM-SET-PASS aarch64" 2>&1) || fail "boot: $out"
grep -E "ovm-settest|OVM-SET|ovm boot" <<<"$out"
phase "PASS"
