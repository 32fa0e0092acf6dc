#!/usr/bin/env bash
# Benchmarks of the build engine (not a test; prints figures and ratios, asserts nothing):
#
# (a) No-op `ovm build x86_64` on the real recipe set (toolchain, build tools, busybox, image all
#     up to date), release build, NOOP_RUNS runs after 3 warm-ups: median, p10, p90. Goal: median
#     < 50 ms (BitBake needs 1-2 min to parse a typical tree). `ovm status x86_64` (same goal) and
#     `ovm --version`, the floor (process start-up), are timed alongside in the same run.
# (b) Sandbox overhead on a real compile: busybox's compile step in the strict sandbox against the
#     same commands without it (`--no-sandbox`: /ovm paths mapped to host paths, the build tools'
#     busybox as the shell of the script and of make), same toolchain, same tools, alternating
#     (ABBA order), COMPILE_RUNS runs each after one warm-up each. Goal: <= 3 % overhead, reported
#     for the compile step's wall time and, less sensitive to other load, for the CPU time (user +
#     sys of every process) of the whole `ovm build x86_64 busybox`.
#     Each run gets a different no-op `-DOVM_BENCH_RUN=ID` in CFLAGS: zig caches every compiled
#     object, keyed on its flags, so without it every run after the first would be cache hits;
#     musl and compiler-rt stay cached (built in the warm-ups), as in any real build. The
#     compile wall time is the task's own duration from context.log; the shared-state cache is off.
#     The two modes live in two projects (target/bench-engine/{sandbox,host}): isolation is an
#     input of every task, so one project alternating modes would rebuild its build tools too.
#
# Usage: scripts/bench-engine.sh [COMPILE_RUNS]   (default 3, 0 skips (b); NOOP_RUNS=30)
# The first run builds the toolchain, the tools (once per mode) and busybox: minutes. Sources
# come from sources/ (run `ovm download` first on an offline machine), the first builds reuse
# .cache/sstate when the repository's own builds filled it.
set -euo pipefail
cd "$(dirname "$0")/.."

REPO="$PWD"
COMPILE_RUNS="${1:-${COMPILE_RUNS:-3}}"
NOOP_RUNS="${NOOP_RUNS:-30}"
BENCH="$REPO/target/bench-engine"

echo "bench: building ovm --release"
OVM=$("$REPO/scripts/ovm-bin.sh" --release)

export OVM_MIRRORS="$REPO/sources"
export OVM_BUILD_CACHE_DIR="$BENCH/cache"
unset SOURCE_DATE_EPOCH OVM_FAULT

echo "bench: sources (ovm download into $REPO/sources)"
"$OVM" -q -C "$REPO" download >/dev/null

for mode in sandbox host; do
  mkdir -p "$BENCH/$mode"
  for d in recipes config patches rootfs; do
    rm -rf "${BENCH:?}/$mode/$d"
    cp -a "$REPO/$d" "$BENCH/$mode/$d"
  done
  # The engine is measured on the zig toolchain (TOOLCHAIN=gcc to use the default one: the first
  # builds then include the gcc toolchain, ~1 h; its tasks are up to date for the no-op run alike).
  sed -i "s/^kind = \"gcc\"$/kind = \"${TOOLCHAIN:-zig}\"/" "$BENCH/$mode/config/ovm.toml"
done
flag_of() { if [ "$1" = host ]; then echo --no-sandbox; fi; }

echo "bench: first builds (toolchain, build tools per mode, busybox; minutes unless cached)"
for mode in sandbox host; do
  # shellcheck disable=SC2046
  OVM_SSTATE_DIR="$REPO/.cache/sstate" "$OVM" -q -C "$BENCH/$mode" build $(flag_of $mode) x86_64 >/dev/null
done

python3 - "$OVM" "$BENCH/sandbox" "$NOOP_RUNS" <<'PY'
import subprocess, sys, time, statistics
ovm, project, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def timed(args):
    t0 = time.perf_counter()
    r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed:\n{r.stderr.decode()}")
    return t * 1000
build = [ovm, "-C", project, "build", "x86_64"]
status = [ovm, "-C", project, "status", "x86_64"]
version = [ovm, "--version"]
for _ in range(3):
    timed(build); timed(status); timed(version)
b, s, v = [], [], []
for _ in range(runs):
    b.append(timed(build)); s.append(timed(status)); v.append(timed(version))
log = open(f"{project}/logs/x86_64/context.log").read().splitlines()
last = max(i for i, l in enumerate(log) if l.split()[1:2] == ["run"])
if any(l.split()[1:2] == ["start"] for l in log[last + 1:]):
    sys.exit("bench: the no-op build ran tasks; the project is not up to date")
def q(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(p * len(xs)))]
mb, ms, mv = statistics.median(b), statistics.median(s), statistics.median(v)
print(f"\n(a) no-op `ovm build x86_64` (real recipe set, everything up to date), {runs} runs:")
print(f"    ovm build x86_64   median {mb:7.1f} ms   p10 {q(b, .1):7.1f}   p90 {q(b, .9):7.1f}")
print(f"    ovm status x86_64  median {ms:7.1f} ms   p10 {q(s, .1):7.1f}   p90 {q(s, .9):7.1f}")
print(f"    ovm --version      median {mv:7.1f} ms   (process start-up, the floor)")
print(f"    goal < 50 ms: build median/goal = {mb / 50:.2f}, status median/goal = {ms / 50:.2f};"
      f" build/start-up = {mb / mv:.1f}x")
PY

if [ "$COMPILE_RUNS" = 0 ]; then exit 0; fi
echo
echo "(b) busybox compile, strict sandbox vs --no-sandbox (same toolchain, tools, shell), ABBA order"
rm -rf "$OVM_BUILD_CACHE_DIR"
python3 - "$OVM" "$REPO" "$BENCH" "$COMPILE_RUNS" <<'PY'
import os, re, resource, statistics, subprocess, sys, time
ovm, repo, bench, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pristine = open(f"{repo}/recipes/busybox.toml").read()

def once(mode, rid):
    """Builds busybox alone with a fresh no-op define; returns (compile wall s, build CPU s)."""
    recipe = pristine.replace('\nstyle = "kbuild"\n',
                              f'\nstyle = "kbuild"\nenv = {{ CFLAGS = "-Os -DOVM_BENCH_RUN={rid}" }}\n', 1)
    if recipe == pristine:
        sys.exit("bench: could not set CFLAGS in recipes/busybox.toml (no `style = \"kbuild\"` line)")
    open(f"{bench}/{mode}/recipes/busybox.toml", "w").write(recipe)
    args = [ovm, "-q", "-C", f"{bench}/{mode}", "build"] + (["--no-sandbox"] if mode == "host" else []) + ["x86_64", "busybox"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(args, env=dict(os.environ, OVM_SSTATE_DIR=""), capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed:\n{r.stdout.decode()}{r.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = open(f"{bench}/{mode}/logs/x86_64/context.log").read()
    wall = float(re.findall(r" done +x86_64 busybox compile ([0-9.]+)s", log)[-1])
    print(f"    {mode:<8} {rid:<10} compile {wall:7.2f} s wall   whole build {cpu:7.2f} s CPU   (load {os.getloadavg()[0]:.1f})", flush=True)
    return wall, cpu

once("sandbox", "warm-sb")
once("host", "warm-host")
rounds = []
for i in range(1, runs + 1):
    order = ["sandbox", "host"] if i % 2 else ["host", "sandbox"]
    got = {mode: once(mode, f"run{i}") for mode in order}
    rounds.append(got)

for k, what in [(0, "compile wall time"), (1, "whole-build CPU time")]:
    sb = [r["sandbox"][k] for r in rounds]
    host = [r["host"][k] for r in rounds]
    ratio = statistics.median(r["sandbox"][k] / r["host"][k] for r in rounds)
    ms, mh = statistics.median(sb), statistics.median(host)
    print(f"  {what}: sandbox median {ms:.2f} s, no sandbox median {mh:.2f} s;"
          f" ratio of medians {ms / mh:.3f}, median of per-round ratios {ratio:.3f}"
          f" -> overhead {100 * (ratio - 1):+.1f} % (goal <= 3 %)")
PY
