#!/usr/bin/env bash
# repro-check.sh ARCH DIR_A DIR_B — do two built ovm projects hold the same initrd for ARCH?
#
# Exit 0: the two images have the same sha256. Exit 1: they differ, and the script says where,
# from the outside in: the compression (same cpio, different compressed bytes), the archive's
# entry list (names, modes, owners, sizes, mtimes, in archive order), then the content of the
# first differing file (with diffoscope's view of it when diffoscope is installed). Exit 2: usage
# or a missing image.
#
# It trusts neither project's manifest: both archives are decompressed and unpacked here, so a
# manifest that does not match its image cannot hide a difference. Needs cpio, gzip/xz/zstd.
set -euo pipefail

usage() {
  echo "usage: $0 ARCH DIR_A DIR_B   (two ovm project dirs, each with output/ARCH/ built)" >&2
  exit 2
}
[ $# -eq 3 ] || usage
arch=$1
dir_a=$2
dir_b=$3

# The image a project's manifest names: "# image<TAB>FILE<TAB>COMPRESSION<TAB>SHA256<TAB>BYTES".
image_of() {
  local manifest="$1/output/$arch/manifest.txt"
  if [ ! -f "$manifest" ]; then
    echo "repro-check: $manifest is missing: build $arch in $1 first (ovm -C $1 build $arch)" >&2
    exit 2
  fi
  local line
  line=$(grep -m1 -P '^# image\t' "$manifest") || {
    echo "repro-check: $manifest has no '# image' line" >&2
    exit 2
  }
  local file comp
  file=$(printf '%s\n' "$line" | cut -f2)
  comp=$(printf '%s\n' "$line" | cut -f3)
  printf '%s\t%s\n' "$1/output/$arch/$file" "$comp"
}

# (Command substitution, not `< <(…)`, so image_of's exit 2 ends the script.)
info_a=$(image_of "$dir_a")
info_b=$(image_of "$dir_b")
IFS=$'\t' read -r image_a comp_a <<<"$info_a"
IFS=$'\t' read -r image_b comp_b <<<"$info_b"
for i in "$image_a" "$image_b"; do
  [ -f "$i" ] || { echo "repro-check: $i is missing" >&2; exit 2; }
done

sha_a=$(sha256sum "$image_a" | cut -d' ' -f1)
sha_b=$(sha256sum "$image_b" | cut -d' ' -f1)
echo "A $sha_a  $image_a"
echo "B $sha_b  $image_b"
if [ "$sha_a" = "$sha_b" ]; then
  echo "repro-check: $arch: identical"
  exit 0
fi
echo "repro-check: $arch: the images DIFFER"

work=$(mktemp -d "${TMPDIR:-/tmp}/repro-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

decompress() { # IMAGE COMPRESSION OUT
  case "$2" in
    gzip) gzip -dc "$1" >"$3" ;;
    xz) xz -dc "$1" >"$3" ;;
    zstd) zstd -qdc "$1" >"$3" ;;
    none) cp "$1" "$3" ;;
    *) echo "repro-check: unknown compression '$2' of $1" >&2; exit 2 ;;
  esac
}
decompress "$image_a" "$comp_a" "$work/a.cpio"
decompress "$image_b" "$comp_b" "$work/b.cpio"

if [ "$comp_a" != "$comp_b" ]; then
  echo "first difference: the compression (A: $comp_a, B: $comp_b)"
fi
if cmp -s "$work/a.cpio" "$work/b.cpio"; then
  echo "first difference: the compressed bytes only; the cpio archives are identical ($comp_a encoder)"
  exit 1
fi

# Entry list in archive order: mode, links, owner, size, mtime, name (-> target).
list() { cpio -itv --numeric-uid-gid --quiet <"$1" 2>/dev/null | sed -E 's/ +/ /g'; }
list "$work/a.cpio" >"$work/a.list"
list "$work/b.cpio" >"$work/b.list"
if ! cmp -s "$work/a.list" "$work/b.list"; then
  echo "first difference in the entry list (mode links uid gid size date name), A then B:"
  diff "$work/a.list" "$work/b.list" | grep -m2 -E '^[<>]' || true
fi

# Contents: unpack both (device nodes need root; their metadata was compared above) and compare
# every path in sorted order.
mkdir "$work/a" "$work/b"
(cd "$work/a" && cpio -id --no-absolute-filenames --no-preserve-owner --quiet <"$work/a.cpio" 2>/dev/null) || true
(cd "$work/b" && cpio -id --no-absolute-filenames --no-preserve-owner --quiet <"$work/b.cpio" 2>/dev/null) || true
first=""
while IFS= read -r rel; do
  pa="$work/a/$rel" pb="$work/b/$rel"
  if [ -L "$pa" ] || [ -L "$pb" ]; then
    [ "$(readlink "$pa" 2>/dev/null)" = "$(readlink "$pb" 2>/dev/null)" ] && continue
  elif [ -f "$pa" ] && [ -f "$pb" ]; then
    cmp -s "$pa" "$pb" && continue
  elif [ -d "$pa" ] && [ -d "$pb" ]; then
    continue
  elif [ ! -e "$pa" ] && [ ! -e "$pb" ]; then
    continue # a device node neither side could create (not root)
  elif [ -e "$pa" ] && [ -e "$pb" ] && [ ! -f "$pa" ] && [ ! -f "$pb" ] && [ ! -d "$pa" ] && [ ! -d "$pb" ]; then
    # Device nodes and fifos: type and major:minor.
    [ "$(stat -c '%F %t:%T' "$pa")" = "$(stat -c '%F %t:%T' "$pb")" ] && continue
  fi
  first=$rel
  break
done < <(cd "$work" && { (cd a && find . -mindepth 1); (cd b && find . -mindepth 1); } | LC_ALL=C sort -u)

if [ -z "$first" ]; then
  echo "every file's content is identical: the difference is in the archive's metadata or framing"
  cmp "$work/a.cpio" "$work/b.cpio" || true
  exit 1
fi
echo "first differing file: /${first#./}"
pa="$work/a/$first" pb="$work/b/$first"
for side in A B; do
  p=$pa; [ "$side" = B ] && p=$pb
  if [ -L "$p" ]; then echo "  $side: symlink -> $(readlink "$p")"
  elif [ -f "$p" ]; then echo "  $side: $(sha256sum "$p" | cut -d' ' -f1) $(stat -c %s "$p") bytes"
  elif [ -e "$p" ]; then echo "  $side: $(stat -c %F "$p")"
  else echo "  $side: absent"; fi
done
if [ -f "$pa" ] && [ -f "$pb" ] && [ ! -L "$pa" ] && [ ! -L "$pb" ]; then
  cmp "$pa" "$pb" | head -1 || true
  if command -v diffoscope >/dev/null; then
    echo "diffoscope (first 80 lines):"
    diffoscope --no-progress --text - "$pa" "$pb" 2>/dev/null | head -n 80 || true
  else
    # Without diffoscope, the printable strings unique to each side usually name the cause
    # (a path, a date, a host name).
    echo "strings only in A / only in B (first 20 each):"
    comm -23 <(strings -n 6 "$pa" | LC_ALL=C sort -u) <(strings -n 6 "$pb" | LC_ALL=C sort -u) | head -20 | sed 's/^/  A: /'
    comm -13 <(strings -n 6 "$pa" | LC_ALL=C sort -u) <(strings -n 6 "$pb" | LC_ALL=C sort -u) | head -20 | sed 's/^/  B: /'
  fi
fi
exit 1
