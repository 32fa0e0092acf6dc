# Sourced by the slow-tier scripts (scripts/slow-*.sh): `slow_project NAME` makes the scratch
# project every one of them starts from and sets, for the caller:
#   root   this repository          ovm    the ovm executable copied into the project (.ovm)
#   host   the build machine's arch  work   the project: a fresh copy of recipes, config, patches,
#   MIRROR the sources mirror (default: this repository's sources/, filled by `ovm download`)
#   phase MSG / fail MSG   progress lines and the failure exit, prefixed with NAME
#   check_elves MACHINE MIN DIR…   every ELF under the DIRs static, stripped, for MACHINE
# The project is removed on exit unless KEEP=1; a script adds its own clean-ups with `on_exit`.
slow_project() {
  slow_name=$1
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  ovm=$("$root/scripts/ovm-bin.sh")
  host=$(uname -m)
  if [ -z "${MIRROR:-}" ]; then
    "$ovm" -C "$root" download >/dev/null
    MIRROR="$root/sources"
  fi
  mkdir -p "$root/target/$slow_name"
  work=$(mktemp -d "$root/target/$slow_name/project-XXXX")
  slow_cleanup=("$work")
  if [ -z "${KEEP:-}" ]; then trap 'rm -rf "${slow_cleanup[@]}"' EXIT; fi
  for d in recipes config patches rootfs; do cp -a "$root/$d" "$work/$d"; done
  cp "$ovm" "$work/.ovm"
  ovm="$work/.ovm"
  t_start=$(date +%s)
}
# Another path to remove on exit (unless KEEP=1).
on_exit() { slow_cleanup+=("$@"); }
phase() { echo "$slow_name: [$(($(date +%s) - t_start))s] $*"; }
fail() {
  echo "$slow_name: FAIL: $*" >&2
  exit 1
}
# check_elves MACHINE MIN DIR…: every ELF file under the DIRs is for MACHINE (as `file` names it:
# "x86-64", "ARM aarch64"), statically linked and stripped, and there are at least MIN of them.
check_elves() {
  local machine=$1 min=$2 elves=0 f desc
  shift 2
  while IFS= read -r f; do
    head -c 4 "$f" | grep -q ELF || continue
    desc=$(file -b "$f")
    case "$desc" in *"$machine"*"statically linked"*stripped*) ;; *) fail "$f: $desc" ;; esac
    grep -q "not stripped" <<<"$desc" && fail "$f: $desc"
    elves=$((elves + 1))
  done < <(find "$@" -type f)
  echo "  $elves ELF files"
  [ "$elves" -ge "$min" ] || fail "only $elves ELF files"
}
