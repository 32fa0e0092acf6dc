#!/usr/bin/env bash
# CMake-built packages on their own (slow tier: CMake, built from source as the `cmake` native
# tool, is some 800 C and C++ files after its bootstrap, 12 min of a fast machine and 25 of a slow
# one, so no CI run builds it). From an empty copy of this project's inputs, offline, with
# the zig toolchain:
#   1. `ovm build --sandbox HOST json-c`: the build tools, the cmake and ninja native tools, and
#      json-c with `style = "cmake"` generating for ninja; json-c's static library, headers and
#      json-c.pc are staged, the library is for the right machine and no output holds the project's
#      path, nor a sandbox path outside debug info (the package QA rule);
#   2. the engine test of the cmake style (`engine_native::the_cmake_style_…`), with the same
#      shared-state directory: CMake is not built twice.
#
# usage: scripts/slow-cmake.sh
#   MIRROR=dir  sources mirror (default: this repository's sources/, filled by `ovm download`)
#   KEEP=1      keep the scratch project
set -euo pipefail

# shellcheck source=scripts/slow-common.sh
. "$(dirname "$0")/slow-common.sh"
slow_project slow-cmake
sstate="$root/target/slow-cmake/sstate"
off() { OVM_SSTATE_DIR="$sstate" OVM_MIRRORS="$MIRROR" unshare --net -- "$ovm" -C "$work" "$@"; }

phase "ovm build --sandbox --toolchain zig $host json-c (build tools, cmake, ninja, json-c)"
off build --sandbox --toolchain zig "$host" json-c
for t in cmake ninja json-c; do
  # The seconds of each task of the three, from the build's context log.
  grep -h " $t " "$work/logs/"*/context.log 2>/dev/null | grep -o "$t [a-z-]* .*" | tail -n 8 || true
done
staged="$work/staging/$host/json-c"
for f in dev/usr/lib/libjson-c.a dev/usr/include/json-c/json.h dev/usr/lib/pkgconfig/json-c.pc \
  licenses/COPYING; do
  [ -e "$staged/$f" ] || fail "json-c: $f is not staged"
  echo "  $f"
done
arch=$(readelf -h "$staged/dev/usr/lib/libjson-c.a" | sed -n 's/^ *Machine: *//p' | sort -u)
echo "  libjson-c.a: $arch"
case "$host:$arch" in x86_64:*X86-64* | aarch64:*AArch64*) ;; *) fail "libjson-c.a is for $arch" ;; esac
# The package QA rule (docs/packages.md, `host-path`): the project's path nowhere; a sandbox path
# only in debug info, which names the sources (target packages compile with -g, and a static
# library in -dev keeps it), and in the -dbg part.
if grep -rl -e "$work" "$staged" "$work/staging/tools/cmake/bin" >/dev/null; then
  fail "the project's path is in json-c's or cmake's output: $(grep -rl -e "$work" "$staged" | head -n 3)"
fi
nodebug=$(mktemp)
on_exit "$nodebug"
while IFS= read -r f; do
  case $f in
  *.a) objcopy --strip-debug "$f" "$nodebug" && g=$nodebug ;;
  *) g=$f ;;
  esac
  if grep -q /ovm/ "$g"; then fail "a sandbox path is in $f outside its debug info"; fi
done < <(find "$staged" "$work/staging/tools/cmake/bin" -path "$staged/dbg" -prune -o -type f -print)
for t in cmake ninja; do
  readelf -l "$work/staging/tools/$t/bin/$t" | grep -q INTERP && fail "$t is not static"
  echo "  $t: $("$work/staging/tools/$t/bin/$t" --version | head -n 1), static"
done

phase "the engine test of the cmake style, sharing this sstate"
(cd "$root" && OVM_TEST_SSTATE_DIR="$sstate" cargo test --quiet --test engine -- --ignored --exact \
  engine_native::the_cmake_style_cross_builds_against_the_sysroot_with_make_or_ninja)
phase "PASS"
