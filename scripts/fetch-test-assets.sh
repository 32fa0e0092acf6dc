#!/usr/bin/env bash
# Fetches what the pack/boot tests boot, into <project>/.cache/test-assets/ARCH/:
#   vmlinuz   Debian's kernel: linux-image-6.1.0-*-amd64 (bzImage) / linux-image-6.1.0-*-arm64 (raw Image)
#   busybox   Debian's busybox-static for that architecture (a stand-in until ovm builds its own)
#   kernel/lib/modules/VERSION/  that kernel's modules, as its .deb ships them (plain .ko files,
#             modules.builtin, modules.order; no modules.dep): what config/ovm.toml's
#             [kernel] modules_from points at
#   SHA256SUMS  sha256 of every file above, checked on every later run; PACKAGES  which .deb each came from
#
# Every architecture uses its own apt state under .cache/apt/DEBARCH (lists, cache, an empty dpkg
# status) with the host's sources and keyrings, so the host's apt configuration is never changed
# and no foreign architecture is added to dpkg. apt checks the archive's signatures and the .debs'
# hashes; this script then checks that each file is what it claims to be (`file`) and records its
# sha256. Idempotent: when every file exists and matches SHA256SUMS, nothing is downloaded.
#
# Called by scripts/setup.sh. Needs: apt-get, apt-cache, dpkg-deb, tar, file, sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ASSETS=$ROOT/.cache/test-assets
APT_BASE=$ROOT/.cache/apt

die() { echo "fetch-test-assets: error: $*" >&2; exit 1; }
say() { echo "fetch-test-assets: $*"; }

for tool in apt-get apt-cache dpkg-deb tar file sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh on Debian)"
done

# apt with a private state for one Debian architecture.
apt_opts() {
  local st=$APT_BASE/$1
  printf '%s\n' -o "APT::Architecture=$1" -o "APT::Architectures=$1" \
    -o "Dir::State=$st" -o "Dir::State::lists=$st/lists" -o "Dir::State::status=$st/status" \
    -o "Dir::Cache=$st/cache" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=true"
}
apt_for() {
  local debarch=$1 cmd=$2; shift 2
  local st=$APT_BASE/$debarch
  mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
  [ -e "$st/status" ] || : >"$st/status"
  local opts; mapfile -t opts < <(apt_opts "$debarch")
  "$cmd" -q "${opts[@]}" "$@"
}

# What `file` must say about each asset.
kernel_signature() {
  case $1 in
    x86_64) echo 'Linux kernel x86 boot executable bzImage' ;;
    aarch64) echo 'Linux kernel ARM64 boot executable Image' ;;
  esac
}
busybox_signature() {
  case $1 in
    x86_64) echo 'ELF 64-bit LSB .*x86-64.*statically linked' ;;
    aarch64) echo 'ELF 64-bit LSB .*ARM aarch64.*statically linked' ;;
  esac
}

verify_file() { # path regex
  [ -s "$1" ] || return 1
  file -b "$1" | grep -Eq "$2"
}

# True when ARCH's assets are present, of the right kind, and match the recorded sha256.
assets_ok() {
  local arch=$1 dir=$ASSETS/$1
  [ -f "$dir/SHA256SUMS" ] || return 1
  verify_file "$dir/vmlinuz" "$(kernel_signature "$arch")" || return 1
  verify_file "$dir/busybox" "$(busybox_signature "$arch")" || return 1
  # A SHA256SUMS of an older version of this script lists no modules: fetch again.
  grep -q '  kernel/lib/modules/.*/modules\.builtin$' "$dir/SHA256SUMS" || return 1
  (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1)
}

fetch_arch() {
  local arch=$1 debarch=$2
  local dir=$ASSETS/$arch
  if assets_ok "$arch"; then
    say "$arch: up to date ($(paste -sd, "$dir/PACKAGES"))"
    return
  fi
  say "$arch: fetching kernel and busybox-static ($debarch) from Debian's archive"
  apt_for "$debarch" apt-get update -qq || die "apt-get update for $debarch failed (is Debian's archive reachable?)"

  # linux-image-ARCH is the metapackage; it depends on the current linux-image-6.1.0-N-ARCH.
  local kpkg
  kpkg=$(apt_for "$debarch" apt-cache depends "linux-image-$debarch" |
    sed -n "s/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-$debarch\)\$/\1/p" | head -n1)
  [ -n "$kpkg" ] || die "no linux-image-6.1.0-*-$debarch found via linux-image-$debarch"

  local tmp
  tmp=$(mktemp -d "$ASSETS/.tmp.$arch.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && apt_for "$debarch" apt-get download -qq "$kpkg:$debarch" "busybox-static:$debarch") ||
    die "apt-get download $kpkg busybox-static ($debarch) failed"

  local kdeb bdeb
  kdeb=$(ls "$tmp"/"${kpkg}"_*.deb) || die "download of $kpkg produced no .deb"
  bdeb=$(ls "$tmp"/busybox-static_*.deb) || die "download of busybox-static produced no .deb"
  mkdir -p "$tmp/k" "$tmp/b" "$tmp/out"
  # The kernel image and its modules; not /usr/share/doc nor the System.map and config in /boot.
  dpkg-deb --fsys-tarfile "$kdeb" | tar -xf - -C "$tmp/k" --wildcards './boot/vmlinuz-*' './lib/modules/*' ||
    die "$kdeb has no /boot/vmlinuz-* or /lib/modules/"
  dpkg-deb -x "$bdeb" "$tmp/b"

  local kimg
  kimg=$(ls "$tmp"/k/boot/vmlinuz-*) || die "$kdeb: no kernel image"
  # Some arm64 kernels ship gzip-compressed; qemu wants the raw Image for -kernel on every version.
  if file -b "$kimg" | grep -q '^gzip compressed'; then
    gzip -dc <"$kimg" >"$tmp/out/vmlinuz"
  else
    cp "$kimg" "$tmp/out/vmlinuz"
  fi
  cp "$tmp/b/bin/busybox" "$tmp/out/busybox"
  chmod 0755 "$tmp/out/busybox"
  local kver
  kver=${kimg##*/vmlinuz-}
  [ -f "$tmp/k/lib/modules/$kver/modules.builtin" ] || die "$kdeb: no lib/modules/$kver/modules.builtin"
  mkdir -p "$tmp/out/kernel/lib"
  mv "$tmp/k/lib/modules" "$tmp/out/kernel/lib/modules"
  local nko
  nko=$(find "$tmp/out/kernel/lib/modules/$kver" -name '*.ko*' -type f | wc -l)
  [ "$nko" -gt 0 ] || die "$kdeb: no kernel modules under lib/modules/$kver"

  verify_file "$tmp/out/vmlinuz" "$(kernel_signature "$arch")" ||
    die "$kdeb: kernel is not a $(kernel_signature "$arch"): $(file -b "$tmp/out/vmlinuz")"
  verify_file "$tmp/out/busybox" "$(busybox_signature "$arch")" ||
    die "$bdeb: busybox is not $(busybox_signature "$arch"): $(file -b "$tmp/out/busybox")"

  (cd "$tmp/out" && { sha256sum vmlinuz busybox; find kernel -type f | LC_ALL=C sort | xargs -d '\n' sha256sum; } >SHA256SUMS.part &&
    mv SHA256SUMS.part SHA256SUMS)
  for deb in "$kdeb" "$bdeb"; do
    dpkg-deb --showformat='${Package} ${Version} ${Architecture}\n' -W "$deb"
  done >"$tmp/out/PACKAGES"

  # Replace the directory as a whole so a failed run never leaves a half-updated set.
  rm -rf "$dir.old"
  [ -e "$dir" ] && mv "$dir" "$dir.old"
  mv "$tmp/out" "$dir"
  rm -rf "$dir.old"
  say "$arch: $(paste -sd, "$dir/PACKAGES"), $nko modules for $kver"
}

mkdir -p "$ASSETS"
fetch_arch x86_64 amd64
fetch_arch aarch64 arm64
