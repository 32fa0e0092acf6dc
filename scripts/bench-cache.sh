#!/usr/bin/env bash
# Benchmark of the remote shared-state cache, side by side in one run:
#
#   A. a cold tree (empty local cache) builds the x86_64 image with TOOLCHAIN (zig), writing to
#      a real nginx (WebDAV, started here on a free 127.0.0.1 port, everything in the bench dir);
#   B. a fresh tree in another directory, its own empty local cache, read-only against the same
#      nginx, builds the same image.
# Prints both wall times, the ratio, the bytes tree B downloaded and its tasks that built
# anything (none expected), and checks the two initrds are bit-identical.
#
# Target (issue 15): tree B under 60 s on this machine.
#
# Env: OVM_BIN (default: the release build, scripts/ovm-bin.sh), BENCH_DIR (default: a temp dir,
#      removed at the end), TOOLCHAIN (zig; gcc builds the cross toolchain from source in tree A,
#      ~15 min: the slow tier).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
die() { echo "bench-cache: error: $*" >&2; exit 1; }
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
command -v nginx >/dev/null || die "nginx not found (run scripts/setup.sh)"
[ -d "$ROOT/sources" ] || die "$ROOT/sources missing: run \`ovm download\` first (the bench's mirror)"
if [ -z "${OVM_BIN:-}" ]; then
  echo "bench-cache: building the release binary"
  OVM_BIN=$("$ROOT/scripts/ovm-bin.sh" --release)
fi
if [ -n "${BENCH_DIR:-}" ]; then
  WORK=$BENCH_DIR; mkdir -p "$WORK"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovm-bench-cache.XXXXXX")
  trap 'kill "$(cat "$WORK/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"' EXIT
fi

# nginx, as in docs/cache.md; as root its workers would be `nobody`, so they run as the caller.
N=$WORK/nginx
mkdir -p "$N/data" "$N/tmp" "$N/logs"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
USER_LINE=""; [ "$(id -u)" = 0 ] && USER_LINE="user root root;"
cat > "$N/nginx.conf" <<CONF
daemon on;
worker_processes 2;
$USER_LINE
pid $N/nginx.pid;
error_log $N/logs/error.log;
events { worker_connections 128; }
http {
  access_log $N/logs/access.log;
  client_body_temp_path $N/tmp/body;
  proxy_temp_path $N/tmp/proxy; fastcgi_temp_path $N/tmp/fastcgi; uwsgi_temp_path $N/tmp/uwsgi; scgi_temp_path $N/tmp/scgi;
  server {
    listen 127.0.0.1:$PORT;
    root $N/data;
    client_max_body_size 0;
    location / { dav_methods PUT; create_full_put_path on; }
  }
}
CONF
nginx -p "$N" -c "$N/nginx.conf"
URL=http://127.0.0.1:$PORT

tree() { # DIR WRITE
  mkdir -p "$1"
  for d in recipes config patches rootfs; do cp -a "$ROOT/$d" "$1/"; done
  sed -i -e "s|^remote = \\[\\]\$|remote = [\"$URL\"]|" -e "s|^write = false\$|write = $2|" "$1/config/ovm.toml"
  grep -q "^remote = \\[\"$URL\"\\]" "$1/config/ovm.toml" || die "config/ovm.toml has no [cache] remote = [] line"
}
build() { # DIR LOG
  local t0 t1
  t0=$(date +%s.%N)
  OVM_MIRRORS=$ROOT/sources OVM_SSTATE_DIR=$1.sstate OVM_BUILD_CACHE_DIR=$1.build-cache \
    "$OVM_BIN" -C "$1" build --toolchain "${TOOLCHAIN:-zig}" x86_64 > "$2" 2>&1 || { tail -30 "$2"; die "build in $1 failed"; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1-$t0:.1f}')"
}
built_tasks() { # DIR: tasks the last run started that build (fetch and the image's pack aside)
  for log in "$1"/logs/*/context.log; do
    awk '$2=="run" {delete l; n=0} $2=="start" && $5!="fetch" && $4!="image" {l[n++]=$3":"$4":"$5}
         END {for (i=0; i<n; i++) print l[i]}' "$log"
  done | sort | tr '\n' ' '
}

tree "$WORK/a" true
tree "$WORK/b" false
echo "bench-cache: tree A, cold, writing to $URL"
TA=$(build "$WORK/a" "$WORK/a.log")
echo "bench-cache: tree B, fresh, read-only"
TB=$(build "$WORK/b" "$WORK/b.log")
SHA_A=$(sha256sum < "$WORK/a/output/x86_64/initrd.cpio.gz" | cut -d' ' -f1)
SHA_B=$(sha256sum < "$WORK/b/output/x86_64/initrd.cpio.gz" | cut -d' ' -f1)
STORED=$(du -sb "$N/data" | cut -f1)
echo
echo "tree A (cold build, uploads):   ${TA} s   $(grep '^ovm: cache:' "$WORK/a.log" | sed 's/^ovm: cache: //')"
echo "tree B (fresh, from the cache): ${TB} s   $(grep '^ovm: cache:' "$WORK/b.log" | sed 's/^ovm: cache: //')"
echo "ratio A/B: $(python3 -c "print(f'{$TA/$TB:.1f}x')")   stored on the server: $(python3 -c "print(f'{$STORED/1e6:.1f} MB')")"
echo "tree B's tasks that built something: [$(built_tasks "$WORK/b")]"
[ "$SHA_A" = "$SHA_B" ] && echo "initrds bit-identical: $SHA_A" || die "initrds differ: A $SHA_A, B $SHA_B"
echo "tree B's toolchain/: [$(ls "$WORK/b/toolchain" 2>/dev/null | tr '\n' ' ')]  sources/: [$(ls "$WORK/b/sources" 2>/dev/null | tr '\n' ' ')]"
