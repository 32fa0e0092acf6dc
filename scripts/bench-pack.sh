#!/usr/bin/env bash
# Benchmark of `ovm pack`, measured side by side with the classic shell pipeline in one run.
#
#   1. Generates a ~60 MB / ~5,000-file tree (text, random binaries, symlinks, a hard link, empty
#      directories) from a fixed seed, as the rootfs/ of a scratch project.
#   2. gzip: `ovm pack --compress gzip` vs
#        find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --block-size=128 | gzip -9 -n
#      and the same pipeline with `pigz -9 -n`; medians of RUNS runs, interleaved.
#   3. xz and zstd: `ovm pack` vs the same pipeline with `xz -6 --check=crc32 -T2` / `zstd -19 -T2`.
#   4. Repack: a busybox-sized rootfs (Debian's static busybox + its applet symlinks + /etc), pack
#      once, edit one file, repack; median of REPACK_RUNS.
# Prints every figure, the output sizes and the ratios against the peers.
#
# Targets (issue 4): ovm gzip >= 2x faster than the gzip -9 pipeline with output <= 1 % larger;
# repack < 0.5 s.
#
# Env: OVM_BIN (default: the release build, scripts/ovm-bin.sh), RUNS (3), XZ_RUNS (1), REPACK_RUNS (5),
#      BENCH_DIR (default: a temp dir, removed at the end), THREADS (ovm -j; default 0 = all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
XZ_RUNS=${XZ_RUNS:-1}
REPACK_RUNS=${REPACK_RUNS:-5}
THREADS=${THREADS:-0}

die() { echo "bench-pack: error: $*" >&2; exit 1; }
for tool in python3 cpio gzip pigz xz zstd awk; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh)"
done
BUSYBOX=$ROOT/.cache/test-assets/x86_64/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (run scripts/setup.sh or scripts/fetch-test-assets.sh)"

if [ -z "${OVM_BIN:-}" ]; then
  echo "bench-pack: building the release binary"
  OVM_BIN=$("$ROOT/scripts/ovm-bin.sh" --release)
fi

if [ -n "${BENCH_DIR:-}" ]; then
  WORK=$BENCH_DIR
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/ovm-bench.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
PROJ=$WORK/proj
rm -rf "$PROJ"
mkdir -p "$PROJ/recipes" "$PROJ/config" "$PROJ/rootfs"
cp config/device_table.txt "$PROJ/config/"
printf '[pack]\nthreads = %s\n' "$THREADS" >"$PROJ/config/ovm.toml"

echo "bench-pack: generating the tree in $PROJ/rootfs"
python3 - "$PROJ/rootfs" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20240601)
letters = "abcdefghijklmnopqrstuvwxyz_"
vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(3000)]
dirs = [""]
for i in range(120):
    parent = rng.choice(dirs)
    d = os.path.join(parent, f"d{i:03d}")
    os.makedirs(os.path.join(root, d))
    dirs.append(d)
def text(size):
    out, n = [], 0
    while n < size:
        indent = " " * (4 * rng.randint(0, 3))
        line = indent + " ".join(rng.choice(vocab) for _ in range(rng.randint(2, 12))) + ";\n"
        out.append(line)
        n += len(line)
    return "".join(out)[:size].encode()
files = []
for i in range(4300):  # text: ~31 MB
    p = os.path.join(rng.choice(dirs), f"t{i:04d}.txt")
    size = int(min(200_000, rng.lognormvariate(8.4, 1.0)))
    with open(os.path.join(root, p), "wb") as f:
        f.write(text(size))
    files.append(p)
for i in range(550):  # random binaries: ~31 MB
    p = os.path.join(rng.choice(dirs), f"b{i:03d}.bin")
    size = int(min(1_000_000, rng.lognormvariate(10.6, 0.8)))
    with open(os.path.join(root, p), "wb") as f:
        f.write(rng.randbytes(size))
    files.append(p)
for i in range(200):  # symlinks, relative and absolute, some dangling
    p = os.path.join(rng.choice(dirs), f"l{i:03d}")
    target = rng.choice(["../" * rng.randint(0, 2) + rng.choice(files), "/" + rng.choice(files), f"missing{i}"])
    os.symlink(target, os.path.join(root, p))
os.link(os.path.join(root, files[0]), os.path.join(root, "hardlink-of-" + os.path.basename(files[0])))
for i in range(40):
    os.makedirs(os.path.join(root, rng.choice(dirs), f"empty{i:02d}"))
EOF
nfiles=$(find "$PROJ/rootfs" | wc -l)
tree_mb=$(du -sm --apparent-size "$PROJ/rootfs" | cut -f1)
echo "bench-pack: tree: $nfiles entries, $tree_mb MB; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
declare -A TIMES SIZES

# run NAME OUTPUT COMMAND...: times one run, records the time and the output size.
run() {
  local name=$1 out=$2; shift 2
  local t0 t1
  sync
  t0=$(now)
  "$@"
  t1=$(now)
  TIMES[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}') "
  SIZES[$name]=$(stat -c %s "$out")
}
pipeline() { # compressor...: the GNU cpio pipeline into $WORK/peer.out
  (cd "$PROJ/rootfs" && find . | LC_ALL=C sort |
    cpio -o -H newc --reproducible -R 0:0 --block-size=128 2>/dev/null | "$@" >"$WORK/peer.out")
}
ovm_pack() { # format
  "$OVM_BIN" -q -C "$PROJ" pack x86_64 --compress "$1" >/dev/null
}
med() { echo "${TIMES[$1]}" | tr ' ' '\n' | grep . | median; }

echo "bench-pack: gzip, $RUNS runs each (interleaved)"
for _ in $(seq "$RUNS"); do
  run ovm-gzip "$PROJ/output/x86_64/initrd.cpio.gz" ovm_pack gzip
  run gzip-9 "$WORK/peer.out" pipeline gzip -9 -n
  run pigz-9 "$WORK/peer.out" pipeline pigz -9 -n
done
gzip -t "$PROJ/output/x86_64/initrd.cpio.gz" || die "ovm's gzip output does not verify"

echo "bench-pack: xz and zstd, $XZ_RUNS run(s) each"
for _ in $(seq "$XZ_RUNS"); do
  run ovm-xz "$PROJ/output/x86_64/initrd.cpio.xz" ovm_pack xz
  run xz-6 "$WORK/peer.out" pipeline xz -6 --check=crc32 -T2
  run ovm-zstd "$PROJ/output/x86_64/initrd.cpio.zst" ovm_pack zstd
  run zstd-19 "$WORK/peer.out" pipeline zstd -q -19 -T2
done
run ovm-none "$PROJ/output/x86_64/initrd.cpio" ovm_pack none
run cpio-only "$WORK/peer.out" pipeline cat

echo "bench-pack: repack of a busybox-sized rootfs after a one-file edit, $REPACK_RUNS runs"
BB=$WORK/bb
rm -rf "$BB"
mkdir -p "$BB/recipes" "$BB/config" "$BB/rootfs/bin" "$BB/rootfs/sbin" "$BB/rootfs/usr/bin" "$BB/rootfs/usr/sbin" "$BB/rootfs/etc"
cp config/device_table.txt "$BB/config/"
cp "$BUSYBOX" "$BB/rootfs/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  ln -sf "$(echo "$applet" | sed 's|[^/]*/|../|g; s|[^/]*$||')bin/busybox" "$BB/rootfs/$applet"
done
printf '#!/bin/sh\nexec /sbin/init\n' >"$BB/rootfs/init"
chmod 0755 "$BB/rootfs/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$BB/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$BB/rootfs/etc/group"
echo "welcome" >"$BB/rootfs/etc/motd"
repack_bb() { "$OVM_BIN" -q -C "$BB" pack x86_64 >/dev/null; }
repack_bb
bb_entries=$(($(wc -l <"$BB/output/x86_64/manifest.txt") - 5))
for i in $(seq "$REPACK_RUNS"); do
  echo "edit $i" >>"$BB/rootfs/etc/motd"
  run repack "$BB/output/x86_64/initrd.cpio.gz" repack_bb
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.2f", (a - b) * 100 / b}'; }
printf '\n%-10s %9s %12s\n' "run" "median s" "bytes"
for k in ovm-gzip gzip-9 pigz-9 ovm-xz xz-6 ovm-zstd zstd-19 ovm-none cpio-only repack; do
  printf '%-10s %9.3f %12s\n' "$k" "$(med $k)" "${SIZES[$k]}"
done
g=$(med ovm-gzip)
echo
echo "tree: $nfiles entries, $tree_mb MB; repack rootfs: $bb_entries entries"
echo "ovm gzip vs gzip -9 pipeline: $(ratio "$(med gzip-9)" "$g")x faster, size $(pct "${SIZES[ovm-gzip]}" "${SIZES[gzip-9]}") % (target: >= 2x, <= 1 %)"
echo "ovm gzip vs pigz -9 pipeline: $(ratio "$(med pigz-9)" "$g")x faster, size $(pct "${SIZES[ovm-gzip]}" "${SIZES[pigz-9]}") %"
echo "ovm xz   vs xz -6 -T2:        $(ratio "$(med xz-6)" "$(med ovm-xz)")x faster, size $(pct "${SIZES[ovm-xz]}" "${SIZES[xz-6]}") %"
echo "ovm zstd vs zstd -19 -T2:     $(ratio "$(med zstd-19)" "$(med ovm-zstd)")x faster, size $(pct "${SIZES[ovm-zstd]}" "${SIZES[zstd-19]}") %"
echo "ovm none vs cpio alone:       $(ratio "$(med cpio-only)" "$(med ovm-none)")x faster"
echo "repack after a one-file edit: $(med repack) s (target: < 0.5 s)"
