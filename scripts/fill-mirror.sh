#!/usr/bin/env bash
# Fills a plain mirror directory with every source the recipes need, fetched the way
# `ovm download` fetches them (mirrors, upstream URLs, then the Debian and PyPI fallbacks) and
# sha256-verified, plus a SHA256SUMS file. Copy the directory to a machine without network or apt
# and point ovm at it: OVM_MIRRORS=/path/to/dir, or `mirrors = ["/path/to/dir"]` under [fetch]
# in config/ovm.toml (files are looked up by name).
#
# usage: scripts/fill-mirror.sh DIR [ARCH|PKG...]
#   OVM=path/to/ovm      use this binary instead of building one with cargo
#   OVM_PROJECT=dir      fill from this project instead of the one this script belongs to
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
dest=$1
shift
root=${OVM_PROJECT:-$(cd "$(dirname "$0")/.." && pwd)}
root=$(cd "$root" && pwd)
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

ovm=${OVM:-}
if [ -z "$ovm" ]; then
  ovm=$("$root/scripts/ovm-bin.sh")
fi

# A scratch project that shares the real one's inputs and apt cache: its sources/ then holds
# exactly the files of this selection, already verified.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/project" "$root/.cache"
for d in recipes config patches; do
  if [ -d "$root/$d" ]; then ln -s "$root/$d" "$work/project/$d"; fi
done
ln -s "$root/.cache" "$work/project/.cache"

# What is already in the mirror or the project's sources/ is reused (verified, not re-fetched).
OVM_MIRRORS="$dest $root/sources ${OVM_MIRRORS:-}" "$ovm" -C "$work/project" download "$@"

for f in "$work/project/sources"/*; do
  [ -f "$f" ] || continue
  case "$f" in *.part | *.bad) continue ;; esac
  name=$(basename "$f")
  if ! cmp -s "$f" "$dest/$name" 2>/dev/null; then
    cp "$f" "$dest/.$name.tmp"
    mv "$dest/.$name.tmp" "$dest/$name"
  fi
done

(
  cd "$dest"
  find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name '.*' -printf '%f\n' | LC_ALL=C sort | xargs -r -d '\n' sha256sum -- >.SHA256SUMS.tmp
  mv .SHA256SUMS.tmp SHA256SUMS
)
echo "fill-mirror: $(wc -l <"$dest/SHA256SUMS") files in $dest"
