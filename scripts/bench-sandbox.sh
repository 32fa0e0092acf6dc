#!/usr/bin/env bash
# Benchmark of sandbox start-up: `ovm sandbox … -- /bin/busybox true` against bubblewrap doing the
# same (`bwrap --unshare-all --tmpfs / --ro-bind busybox --proc /proc --dev /dev`), with
# `unshare -Urmpnf --mount-proc true` as the floor of "just the namespaces". The commands run
# alternately, RUNS times each after a warm-up, timed by a small C driver (posix_spawn + waitpid,
# CLOCK_MONOTONIC) so the driver's own cost is the same tiny constant for every command.
# Prints each median and the ovm/bwrap ratio (target <= 0.75, goal <= 0.5).
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
cargo build --release --quiet
OVM="$PWD/target/release/ovm"

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
/* timer RUNS NAME CMD... [::: NAME CMD...]... : run the commands alternately, print medians (ms). */
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: timer RUNS NAME CMD... [::: NAME CMD...]...\n"); return 2; }
    int runs = atoi(argv[1]), n = 0;
    char **cmds[8], *names[8];
    for (int i = 2; i < argc && n < 8;) {
        names[n] = argv[i++];
        cmds[n] = &argv[i];
        while (i < argc && strcmp(argv[i], ":::") != 0) i++;
        if (i < argc) argv[i++] = NULL;
        n++;
    }
    double *t[8];
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
        qsort(t[c], runs, sizeof(double), cmp);
        printf("%s %.3f %.3f %.3f\n", names[c], t[c][runs / 2], t[c][runs / 10], t[c][runs * 9 / 10]);
    }
    return 0;
}
C
cc -O2 -o "$TIMER" "$TIMER.c"

BWRAP="$(command -v bwrap)"
UNSHARE="$(command -v unshare)"
TRUE="$(command -v true)"
echo "bench: $(uname -sr), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs each, alternating"
results="$("$TIMER" "$RUNS" \
  ovm "$OVM" sandbox --ro "$BUSYBOX:$BUSYBOX" -- "$BUSYBOX" true ::: \
  bwrap "$BWRAP" --unshare-all --tmpfs / --ro-bind "$BUSYBOX" "$BUSYBOX" --proc /proc --dev /dev "$BUSYBOX" true ::: \
  unshare "$UNSHARE" -Urmpnf --mount-proc "$TRUE")"

echo "$results" | awk '
  { median[$1] = $2; printf "%-8s median %7.3f ms   (p10 %.3f, p90 %.3f)\n", $1, $2, $3, $4 }
  END {
    ratio = median["ovm"] / median["bwrap"]
    printf "ratio ovm/bwrap = %.2f (target <= 0.75, goal <= 0.50): %s\n", ratio, ratio <= 0.75 ? "target met" : "TARGET MISSED"
    printf "ratio ovm/unshare = %.2f (unshare -Urmpnf is the namespaces alone, no mounts)\n", median["ovm"] / median["unshare"]
  }'
