#!/usr/bin/env bash
# The slow tier of the gcc toolchain (issue 7), run on demand, never by CI (~35-60 min per arch on
# two busy cores). From an empty copy of this project's inputs, offline (a new network namespace;
# sources come from a plain-directory mirror):
#   1. optional (FAULT=1): a broken patch in gcc's in-tree gmp makes `ovm toolchain ARCH` fail in
#      gcc's all-gcc; checks the await marker names that step; removes the patch; the rerun must not
#      run any binutils task;
#   2. `ovm toolchain ARCH` (the host's toolchain too when ARCH is not the host's);
#   3. `file` on gcc, cc1, as, ld: static;
#   4. a hello-world recipe built in the strict sandbox with that toolchain, run (qemu-user for
#      aarch64);
#   5. `ovm build --sandbox ARCH --toolchain gcc`, then
#      `ovm boot ARCH --append ovm.test=1 --expect "OVM-INIT-OK ARCH"`;
#   6. wall time of every task (from logs/*/context.log) and of each phase.
#
# usage: scripts/slow-gcc.sh ARCH
#   MIRROR=dir    sources mirror (default: this repository's sources/, filled by `ovm download`
#                 first, online, before going offline)
#   WORK=dir      where the scratch project goes (default: a new dir under target/slow-gcc)
#   FAULT=1       do step 1
#   KEEP=1        keep the scratch project
set -euo pipefail

arch=${1:?usage: scripts/slow-gcc.sh ARCH}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --manifest-path "$root/Cargo.toml"
ovm="$root/target/debug/ovm"
host=$(uname -m)

if [ -z "${MIRROR:-}" ]; then
  echo "slow-gcc: filling the mirror ($root/sources) with ovm download (online, once)"
  "$ovm" -C "$root" download >/dev/null
  MIRROR="$root/sources"
fi
mkdir -p "$root/target/slow-gcc"
work=${WORK:-$(mktemp -d "$root/target/slow-gcc/project-$arch-XXXX")}
mkdir -p "$work"
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; fi
for d in recipes config patches rootfs; do cp -a "$root/$d" "$work/$d"; done
# The kernels `ovm boot` uses by default (scripts/setup.sh fetches them into the repository).
if [ ! -f "$root/.cache/test-assets/$arch/vmlinuz" ]; then
  echo "slow-gcc: $root/.cache/test-assets/$arch/vmlinuz is missing: run scripts/setup.sh" >&2
  exit 1
fi
mkdir -p "$work/.cache"
ln -sfn "$root/.cache/test-assets" "$work/.cache/test-assets"
# A copy of the binary: rebuilding the repository during the run must not change it.
cp "$ovm" "$work/.ovm"
ovm="$work/.ovm"
echo "slow-gcc: project $work, mirror $MIRROR"

# Offline: a new network namespace with nothing but loopback.
# `time`: wall, and user+sys of ovm and every sandboxed process it waited for (CPU-s).
TIMEFORMAT='slow-gcc:   wall %1R s, cpu %1U s user + %1S s sys'
off() { time OVM_MIRRORS="$MIRROR" unshare --net -- "$ovm" -C "$work" "$@"; }
t_start=$(date +%s)
phase() { echo "slow-gcc: [$(( $(date +%s) - t_start ))s] $*"; }

tc_arches=("$arch")
if [ "$arch" != "$host" ]; then tc_arches=("$host" "$arch"); fi

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
  phase "FAULT: ovm toolchain ${tc_arches[0]} with a broken gcc patch (must fail in all-gcc)"
  if off toolchain "${tc_arches[0]}" >"$work/fault.out" 2>&1; then
    echo "slow-gcc: FAIL: the broken patch did not stop the build" >&2
    exit 1
  fi
  tail -n 5 "$work/fault.out"
  awaiting=$(cat "$work/states/cross-${tc_arches[0]}/await")
  echo "slow-gcc: await = $awaiting"
  grep -q '"gcc"' <<<"$awaiting" && grep -q '"all-gcc"' <<<"$awaiting" ||
    { echo "slow-gcc: FAIL: await does not name gcc all-gcc" >&2; exit 1; }
  rm "$work/patches/gcc/9999-injected-fault.patch"
fi

for a in "${tc_arches[@]}"; do
  phase "ovm toolchain $a"
  off toolchain "$a"
  if [ -n "${FAULT:-}" ] && [ "$a" = "${tc_arches[0]}" ]; then
    ran=$(awk '/ run /{n=NR} {l[NR]=$0} END{for(i=n;i<=NR;i++) print l[i]}' "$work/logs/cross-$a/context.log" |
      awk '$2=="start"{print $4, $5}')
    echo "slow-gcc: tasks run after the fix: $(tr '\n' ' ' <<<"$ran")"
    if grep -q '^binutils ' <<<"$ran"; then
      echo "slow-gcc: FAIL: the rerun rebuilt binutils" >&2
      exit 1
    fi
  fi
done

tc="$work/toolchain/$arch"
t=$( [ "$arch" = x86_64 ] && echo x86_64-linux-musl || echo aarch64-linux-musl )
phase "file on the toolchain's gcc, cc1, as, ld"
for f in "$tc/bin/$t-gcc" "$tc"/libexec/gcc/"$t"/*/cc1 "$tc/bin/$t-as" "$tc/bin/$t-ld"; do
  desc=$(file -b "$f")
  echo "  $(basename "$f"): $desc"
  case "$desc" in *"statically linked"* | *"static-pie linked"*) ;; *) echo "slow-gcc: FAIL: $f is not static" >&2; exit 1 ;; esac
done

phase "hello world in the strict sandbox"
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
off build --sandbox "$arch" hello --toolchain gcc
hello="$work/staging/$arch/hello/usr/bin/hello"
file -b "$hello"
if [ "$arch" = "$host" ]; then "$hello"; else "qemu-$arch" "$hello"; fi
rm -f "$work/recipes/hello.toml"
rm -rf "$work/config/hello"

phase "ovm build --sandbox $arch --toolchain gcc"
off build --sandbox "$arch" --toolchain gcc
phase "ovm boot $arch"
off boot "$arch" --append ovm.test=1 --expect "OVM-INIT-OK $arch"
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
echo "slow-gcc: total wall $(( $(date +%s) - t_start )) s"
