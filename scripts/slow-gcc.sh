#!/usr/bin/env bash
# The slow tier of the gcc toolchain (issue 7), run on demand, never by CI (~50-90 min on two
# cores). From an empty copy of this project's inputs, offline (a new network namespace; sources
# come from a plain-directory mirror), with the project's default toolchain, gcc:
#   1. `ovm build --sandbox HOST` cold: it must build the gcc cross toolchain first (it is
#      missing), then the build tools with it, busybox, the image. The time of every task is the
#      cold-build benchmark's split (toolchain, build tools, busybox, pack);
#   2. `file` on the toolchain's gcc, cc1, as, ld: static; a hello-world recipe built in the strict
#      sandbox with it runs; `ovm boot HOST --append ovm.test=1 --expect "OVM-INIT-OK HOST"`;
#   3. for the other arch (aarch64 on an x86_64 host), optional (FAULT=1): a broken patch in gcc's
#      in-tree gmp makes `ovm toolchain ARCH` fail in gcc's all-gcc; the await marker must name that
#      step; the patch is removed and the rerun must not run any binutils task;
#   4. `ovm toolchain ARCH`, the checks of 2 for it (hello runs under qemu-user), then
#      `ovm build --sandbox ARCH`, which must reuse the host's build tools and toolchain (no task of
#      theirs runs), and the boot;
#   5. wall time of every task (from logs/*/context.log) and of each phase.
#
# usage: scripts/slow-gcc.sh [ARCH]   ARCH: the other arch of steps 3-4 (default aarch64; `none`:
#                                     the host's steps only)
#   MIRROR=dir    sources mirror (default: this repository's sources/, filled by `ovm download`
#                 first, online, before going offline)
#   WORK=dir      where the scratch project goes (default: a new dir under target/slow-gcc)
#   FAULT=1       do the fault injection of step 3
#   KEEP=1        keep the scratch project
set -euo pipefail

other=${1:-aarch64}
root=$(cd "$(dirname "$0")/.." && pwd)
ovm=$("$root/scripts/ovm-bin.sh")
host=$(uname -m)
arches=("$host")
if [ "$other" != none ] && [ "$other" != "$host" ]; then arches+=("$other"); fi

if [ -z "${MIRROR:-}" ]; then
  echo "slow-gcc: filling the mirror ($root/sources) with ovm download (online, once)"
  "$ovm" -C "$root" download >/dev/null
  MIRROR="$root/sources"
fi
mkdir -p "$root/target/slow-gcc"
work=${WORK:-$(mktemp -d "$root/target/slow-gcc/project-XXXX")}
mkdir -p "$work"
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; fi
for d in recipes config patches rootfs; do cp -a "$root/$d" "$work/$d"; done
# The kernels `ovm boot` uses by default (scripts/setup.sh fetches them into the repository).
for a in "${arches[@]}"; do
  if [ ! -f "$root/.cache/test-assets/$a/vmlinuz" ]; then
    echo "slow-gcc: $root/.cache/test-assets/$a/vmlinuz is missing: run scripts/setup.sh" >&2
    exit 1
  fi
done
mkdir -p "$work/.cache"
ln -sfn "$root/.cache/test-assets" "$work/.cache/test-assets"
# A copy of the binary: rebuilding the repository during the run must not change it.
cp "$ovm" "$work/.ovm"
ovm="$work/.ovm"
grep -q '^kind = "gcc"$' "$work/config/ovm.toml" || { echo "slow-gcc: the default toolchain is not gcc" >&2; exit 1; }
echo "slow-gcc: project $work, mirror $MIRROR, arches ${arches[*]}"

# Offline: a new network namespace with nothing but loopback.
# `time`: wall, and user+sys of ovm and every sandboxed process it waited for (CPU-s).
TIMEFORMAT='slow-gcc:   wall %1R s, cpu %1U s user + %1S s sys'
off() { time OVM_MIRRORS="$MIRROR" unshare --net -- "$ovm" -C "$work" "$@"; }
t_start=$(date +%s)
phase() { echo "slow-gcc: [$(($(date +%s) - t_start))s] $*"; }
fail() {
  echo "slow-gcc: FAIL: $*" >&2
  exit 1
}
# Task starts so far in a domain's context.log (tells which tasks a later command ran).
starts() {
  if [ -f "$work/logs/$1/context.log" ]; then awk '$2=="start"' "$work/logs/$1/context.log" | wc -l; else echo 0; fi
}

check_static() {
  local a=$1 tc="$work/toolchain/$1" t="$1-linux-musl" f desc
  phase "file on the $a toolchain's gcc, cc1, as, ld"
  for f in "$tc/bin/$t-gcc" "$tc"/libexec/gcc/"$t"/*/cc1 "$tc/bin/$t-as" "$tc/bin/$t-ld"; do
    desc=$(file -b "$f")
    echo "  $(basename "$f"): $desc"
    case "$desc" in *"statically linked"* | *"static-pie linked"*) ;; *) fail "$f is not static" ;; esac
  done
  "$tc/bin/$t-gcc" --version | head -n 1
}

hello() {
  local a=$1 bin
  phase "hello world in the strict sandbox ($a)"
  mkdir -p "$work/config/hello"
  cat >"$work/config/hello/hello.c" <<'EOF'
#include <limits.h>
#include <stdio.h>
int main(void) { printf("hello from gcc, PATH_MAX=%d\n", PATH_MAX); return 0; }
EOF
  cat >"$work/recipes/hello.toml" <<'EOF'
name = "hello"
version = "1"
license = "MIT"
files = ["hello/hello.c"]

# A recipe needs a source; this one is a small file already in the mirror, left unused.
[[source]]
url = "https://deb.debian.org/debian/pool/main/c/cross-toolchain-base/linux-libc-dev-amd64-cross_6.1.4-1cross1_all.deb"
sha256 = "b7ec9f95d20bd4669119201ec6a1ac372189fc222d35f21631bb79b723519293"
unpack = false
[build]
style = "custom"
compile = '''
"$CC" -static -O2 -o hello /ovm/files/hello/hello.c
'''
install = '''
mkdir -p /ovm/dest/usr/bin
cp hello /ovm/dest/usr/bin/hello
'''
EOF
  off build --sandbox "$a" hello
  bin="$work/staging/$a/hello/runtime/usr/bin/hello"
  file -b "$bin"
  if [ "$a" = "$host" ]; then "$bin"; else "qemu-$a" "$bin"; fi
  rm -f "$work/recipes/hello.toml"
  rm -rf "$work/config/hello"
}

boot() {
  phase "ovm boot $1"
  off boot "$1" --append ovm.test=1 --expect "OVM-INIT-OK $1"
}

# 1-2. The host: one cold `ovm build`, which must build the (default) gcc toolchain first.
phase "ovm build --sandbox $host (cold, default toolchain)"
off build --sandbox "$host"
[ "$(starts "cross-$host")" -gt 0 ] || fail "ovm build $host did not build the gcc toolchain"
[ "$(starts toolchain)" = 0 ] || fail "ovm build $host built the zig toolchain"
check_static "$host"
hello "$host"
boot "$host"

# 3-4. The other arch: `ovm toolchain ARCH`, then a build that reuses the host's build tools.
if [ "${#arches[@]}" -gt 1 ]; then
  a=${arches[1]}
  if [ -n "${FAULT:-}" ]; then
    mkdir -p "$work/patches/gcc"
    cat >"$work/patches/gcc/9999-injected-fault.patch" <<'EOF'
Injected by scripts/slow-gcc.sh: gmp.h stops the first compile of all-gcc.
--- a/gmp/gmp-h.in
+++ b/gmp/gmp-h.in
@@ -29,6 +29,7 @@
 see https://www.gnu.org/licenses/.  */
 
 #ifndef __GMP_H__
+#error "ovm slow-gcc: injected fault"
 
 #if defined (__cplusplus)
 #include <iosfwd>   /* for std::istream, std::ostream, std::string */
EOF
    phase "FAULT: ovm toolchain $a with a broken gcc patch (must fail in all-gcc)"
    if off toolchain "$a" >"$work/fault.out" 2>&1; then fail "the broken patch did not stop the build"; fi
    tail -n 5 "$work/fault.out"
    awaiting=$(cat "$work/states/cross-$a/await")
    echo "slow-gcc: await = $awaiting"
    grep -q '"gcc"' <<<"$awaiting" && grep -q '"all-gcc"' <<<"$awaiting" || fail "await does not name gcc all-gcc"
    rm "$work/patches/gcc/9999-injected-fault.patch"
  fi
  phase "ovm toolchain $a"
  off toolchain "$a"
  if [ -n "${FAULT:-}" ]; then
    ran=$(awk '/ run /{n=NR} {l[NR]=$0} END{for(i=n;i<=NR;i++) print l[i]}' "$work/logs/cross-$a/context.log" |
      awk '$2=="start"{print $4, $5}')
    echo "slow-gcc: tasks run after the fix: $(tr '\n' ' ' <<<"$ran")"
    if grep -q '^binutils ' <<<"$ran"; then fail "the rerun rebuilt binutils"; fi
  fi
  check_static "$a"
  hello "$a"
  tools_before=$(starts tools)
  host_tc_before=$(starts "cross-$host")
  phase "ovm build --sandbox $a (default toolchain)"
  off build --sandbox "$a"
  [ "$(starts tools)" = "$tools_before" ] || fail "ovm build $a rebuilt the host's build tools"
  [ "$(starts "cross-$host")" = "$host_tc_before" ] || fail "ovm build $a rebuilt the $host toolchain"
  echo "slow-gcc: ovm build $a ran no task of the build tools or of the $host toolchain"
  boot "$a"
fi
phase "done"

echo
echo "slow-gcc: wall time per task (all runs; context.log):"
for log in "$work"/logs/*/context.log; do
  awk '$2=="done" || $2=="failed" {printf "  %-14s %-14s %-14s %-7s %s\n", $3, $4, $5, $2, $6}' "$log"
done
echo "slow-gcc: per domain (sum of task times):"
for log in "$work"/logs/*/context.log; do
  awk '$2=="done" || $2=="failed" {s=$6; sub(/s$/,"",s); t[$3]+=s} END{for (d in t) printf "  %-14s %8.1f s\n", d, t[d]}' "$log"
done
echo "slow-gcc: total wall $(($(date +%s) - t_start)) s"
