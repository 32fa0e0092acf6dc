#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing): the cold build of the repository's package set
# (tests/fixtures/package-set.toml, cryptsetup and the CMake it needs included) for x86_64 with the zig toolchain, in the strict sandbox, release
# build of ovm. Cold: a fresh project, an empty shared-state cache and an empty zig object cache
# (musl, compiler-rt and every object compiled), sources already downloaded (`ovm download`).
# Prints the wall time of the build, then per package (build and native tools included) the
# seconds of each of its tasks from the context log, summed: packages build in parallel on the
# jobs of one jobserver, so the sum of the rows exceeds the wall time.
#
# Usage: scripts/bench-set.sh   (JOBS=N to override the job count; default: cores)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
BENCH="$REPO/target/bench-set"
SET=$(grep '^packages = \[' "$REPO/tests/fixtures/package-set.toml")

echo "bench-set: building ovm --release"
OVM=$("$REPO/scripts/ovm-bin.sh" --release)
"$OVM" -q -C "$REPO" download >/dev/null
rm -rf "$BENCH"
mkdir -p "$BENCH/project"
for d in recipes config patches rootfs; do cp -a "$REPO/$d" "$BENCH/project/$d"; done
cfg="$BENCH/project/config/ovm.toml"
sed -i 's/^kind = "gcc"$/kind = "zig"/; s/^packages = \["busybox"\]$/'"$SET"'/' "$cfg"
grep -qx 'kind = "zig"' "$cfg" && grep -qxF "$SET" "$cfg" || { echo "bench-set: config/ovm.toml changed shape" >&2; exit 1; }
export OVM_MIRRORS="$REPO/sources" OVM_SSTATE_DIR="$BENCH/sstate" OVM_BUILD_CACHE_DIR="$BENCH/zig-cache"
unset SOURCE_DATE_EPOCH OVM_FAULT

echo "bench-set: cold ovm build --sandbox x86_64 of: ${SET#packages = }"
t0=$(date +%s.%N)
"$OVM" -q -C "$BENCH/project" build --sandbox ${JOBS:+-j "$JOBS"} x86_64
t1=$(date +%s.%N)
python3 - "$BENCH/project" "$t0" "$t1" <<'PY'
import collections, glob, os, sys
project, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
per = collections.defaultdict(lambda: collections.defaultdict(float))
for log in glob.glob(f"{project}/logs/*/context.log"):
    for line in open(log):
        f = line.split()
        # "TIME done DOMAIN PACKAGE TASK 1.23s sig=…"
        if len(f) >= 6 and f[1] == "done" and f[5].endswith("s"):
            per[(f[2], f[3])][f[4]] += float(f[5][:-1])
print(f"bench-set: wall time {t1 - t0:.1f} s on {os.cpu_count()} cores")
print(f"{'domain':<10} {'package':<15} {'total s':>8}  tasks (s)")
for (domain, pkg), tasks in sorted(per.items(), key=lambda kv: -sum(kv[1].values())):
    detail = ", ".join(f"{t} {s:.1f}" for t, s in sorted(tasks.items(), key=lambda kv: -kv[1]) if s >= 0.5)
    print(f"{domain:<10} {pkg:<15} {sum(tasks.values()):>8.1f}  {detail}")
image = f"{project}/output/x86_64/initrd.cpio.gz"
print(f"bench-set: image {os.path.getsize(image)} bytes gzipped")
PY
