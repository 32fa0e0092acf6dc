#!/usr/bin/env bash
# Benchmark of sandbox start-up: `ovm sandbox … -- /bin/busybox true` against bubblewrap doing the
# same (`bwrap --unshare-all --tmpfs / --ro-bind busybox --proc /proc --dev /dev`), with
# `unshare -Urmpnf --mount-proc true` as the floor of "just the namespaces". The commands run
# alternately, RUNS times each after a warm-up, timed by a small C driver (posix_spawn + waitpid,
# CLOCK_MONOTONIC) so the driver's own cost is the same tiny constant for every command.
# Prints each median and the ovm/bwrap ratio (target <= 0.75, goal <= 0.5), both as the ratio of
# the medians and as the median of per-round ratios (which cancels load that drifts during a run).
#
# ovm is measured as `cargo build --release` makes it: static, non-PIE, musl (.cargo/config.toml).
# Optional extras in the same interleaved run:
#   OVM_BASELINE=/path/to/ovm   another ovm binary (e.g. an older build), shown as "baseline";
#   CPU=1                       afterwards, the CPU time per sandbox of each command (all its
#                               processes, including work left after it returns), from a cgroup's
#                               CPU accounting over RUNS sequential runs (root only; robust to load);
#   GLIBC=1                     ovm built for the host's glibc target instead (dynamic, non-PIE:
#                               see build.rs), shown as "ovm-glibc": what the musl build saves.
#
# Usage: scripts/bench-sandbox.sh [RUNS]   (default 300; installs bubblewrap with apt if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-${RUNS:-300}}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v bwrap >/dev/null 2>&1; then
  echo "bench: installing bubblewrap (needed by this benchmark only)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
BUSYBOX=/bin/busybox
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q "statically linked"; then
  echo "bench: $BUSYBOX is missing or not static: run scripts/setup.sh (busybox-static)" >&2
  exit 1
fi

echo "bench: building ovm --release"
OVM=$(scripts/ovm-bin.sh --release)
SANDBOX_ARGS=(sandbox --ro "$BUSYBOX:$BUSYBOX" -- "$BUSYBOX" true)
extra=()
if [ -n "${OVM_BASELINE:-}" ]; then
  extra+=(::: baseline "$OVM_BASELINE" "${SANDBOX_ARGS[@]}")
fi
if [ "${GLIBC:-0}" = 1 ]; then
  HOST="$(rustc -vV | sed -n 's/^host: //p')"
  echo "bench: building ovm --release for $HOST (slow the first time)"
  extra+=(::: ovm-glibc "$(CARGO_BUILD_TARGET="$HOST" scripts/ovm-bin.sh --release)" "${SANDBOX_ARGS[@]}")
fi

TIMER="$PWD/target/bench-sandbox-timer"
cat > "$TIMER.c" <<'C'
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median(double *v, int n) { qsort(v, n, sizeof(double), cmp); return v[n / 2]; }
/* timer RUNS REF NAME CMD... [::: NAME CMD...]...
 * Runs the commands alternately (one of each per round), RUNS rounds after 10 warm-up rounds.
 * Prints per command: median, p10, p90 (ms), and the median over rounds of its time divided by
 * REF's time in the same round (robust against load that drifts during the run). */
int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: timer RUNS REF NAME CMD... [::: NAME CMD...]...\n"); return 2; }
    int runs = atoi(argv[1]), n = 0, ref = -1;
    char **cmds[8], *names[8];
    for (int i = 3; i < argc && n < 8;) {
        names[n] = argv[i++];
        if (strcmp(names[n], argv[2]) == 0) ref = n;
        cmds[n] = &argv[i];
        while (i < argc && strcmp(argv[i], ":::") != 0) i++;
        if (i < argc) argv[i++] = NULL;
        n++;
    }
    if (ref < 0) { fprintf(stderr, "timer: no command named %s\n", argv[2]); return 2; }
    double *t[8], *ratio = calloc(runs, sizeof(double));
    for (int c = 0; c < n; c++) t[c] = calloc(runs, sizeof(double));
    for (int r = -10; r < runs; r++)
        for (int c = 0; c < n; c++) {
            struct timespec a, b;
            pid_t pid;
            int st;
            clock_gettime(CLOCK_MONOTONIC, &a);
            if (posix_spawn(&pid, cmds[c][0], NULL, NULL, cmds[c], environ) != 0) { perror(cmds[c][0]); return 1; }
            if (waitpid(pid, &st, 0) < 0) { perror("waitpid"); return 1; }
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "%s failed (status %d)\n", names[c], st); return 1; }
            if (r >= 0) t[c][r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
        }
    for (int c = 0; c < n; c++) {
        for (int r = 0; r < runs; r++) ratio[r] = t[c][r] / t[ref][r];
        double paired = median(ratio, runs);
        double med = median(t[c], runs); /* sorts t[c]; the ratios were taken first */
        printf("%s %.3f %.3f %.3f %.3f\n", names[c], med, t[c][runs / 10], t[c][runs * 9 / 10], paired);
    }
    return 0;
}
C
cc -O2 -o "$TIMER" "$TIMER.c"

BWRAP="$(command -v bwrap)"
UNSHARE="$(command -v unshare)"
TRUE="$(command -v true)"
echo "bench: $(uname -sr), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs each, alternating"
# Order within a round: ovm returns as soon as the command's status is known, while the kernel
# still tears down the sandbox's mount namespace and init's memory in the background; unshare runs
# right after ovm so that this leftover work lands on it, never on bwrap.
results="$("$TIMER" "$RUNS" bwrap \
  bwrap "$BWRAP" --unshare-all --tmpfs / --ro-bind "$BUSYBOX" "$BUSYBOX" --proc /proc --dev /dev "$BUSYBOX" true ::: \
  ovm "$OVM" "${SANDBOX_ARGS[@]}" ::: \
  unshare "$UNSHARE" -Urmpnf --mount-proc "$TRUE" \
  "${extra[@]}")"
echo "bench: load average after $(cut -d' ' -f1-3 /proc/loadavg)"

echo "$results" | awk '
  { name[NR] = $1; median[$1] = $2; paired[$1] = $5
    printf "%-10s median %7.3f ms   (p10 %.3f, p90 %.3f)   per-round ratio to bwrap %.2f\n", $1, $2, $3, $4, $5 }
  function verdict(r) { return r <= 0.50 ? "goal met" : (r <= 0.75 ? "target met" : "TARGET MISSED") }
  END {
    for (i = 1; i <= NR; i++) {
      n = name[i]
      if (n == "bwrap" || n == "unshare") continue
      r = median[n] / median["bwrap"]
      printf "ratio of medians %s/bwrap = %.2f (per-round %.2f; target <= 0.75, goal <= 0.50): %s\n", n, r, paired[n], verdict(r)
    }
    printf "unshare/bwrap = %.2f (unshare -Urmpnf: the namespaces alone, no mounts, no pivot_root)\n", median["unshare"] / median["bwrap"]
  }'

if [ "${CPU:-0}" = 1 ]; then
  # cgroup v2 (cpu.stat usage_usec) or v1 (cpuacct.usage, ns).
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG_ROOT=/sys/fs/cgroup; usage() { awk '/^usage_usec/ { print $2 * 1000 }' "$1/cpu.stat"; }
  else
    CG_ROOT=/sys/fs/cgroup/cpuacct; usage() { cat "$1/cpuacct.usage"; }
  fi
  cpu_per_run() { # NAME CMD...
    local name=$1 cg="$CG_ROOT/ovm-bench-sandbox-$$"; shift
    mkdir "$cg"
    ( echo "$BASHPID" > "$cg/cgroup.procs"; for ((i = 0; i < RUNS; i++)); do "$@" || exit 1; done )
    sleep 0.5 # work the last run left behind (ovm's init tearing down) is accounted too
    awk -v n="$name" -v ns="$(usage "$cg")" -v runs="$RUNS" 'BEGIN { printf "%-10s CPU %.3f ms per run\n", n, ns / runs / 1e6 }'
    rmdir "$cg"
  }
  echo "bench: CPU time per sandbox, $RUNS sequential runs each"
  cpu_per_run bwrap "$BWRAP" --unshare-all --tmpfs / --ro-bind "$BUSYBOX" "$BUSYBOX" --proc /proc --dev /dev "$BUSYBOX" true
  cpu_per_run ovm "$OVM" "${SANDBOX_ARGS[@]}"
  cpu_per_run unshare "$UNSHARE" -Urmpnf --mount-proc "$TRUE"
  if [ -n "${OVM_BASELINE:-}" ]; then cpu_per_run baseline "$OVM_BASELINE" "${SANDBOX_ARGS[@]}"; fi
fi
