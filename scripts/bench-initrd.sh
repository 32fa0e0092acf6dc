#!/usr/bin/env bash
# Benchmark of ovm's initrd against Debian's dracut and initramfs-tools, for the same kernel and
# the same drivers, measured side by side in one run (not a test: prints figures, asserts nothing).
#
# Images (x86_64, Debian's linux-image-6.1.0-*-amd64 that scripts/fetch-test-assets.sh pins):
#   dracut-min     dracut --no-hostonly -m "base rootfs-block kernel-modules"
#                         --drivers "virtio_blk virtio_pci ext4"
#   dracut-generic dracut --no-hostonly (its default module set; systemd is installed, so systemd)
#   initramfs-tools  mkinitramfs with MODULES=list and the same three drivers (zstd, Debian's default)
#   ovm            `ovm build x86_64` of this repository (rootfs/, config/), with [kernel] modules
#                  set to the same three drivers; ovm-xz and ovm-zstd: the same files packed with
#                  `ovm pack --compress xz|zstd` (ovm's default is gzip)
#   ovm-initrd     `ovm build x86_64 --image initrd` (images/initrd.toml): the image made for
#                  this job, busybox-mini and the same modules, xz
#   floor          a bare busybox /init that prints the marker itself: kernel + unpack + exec, the
#                  least any initrd can cost
# For each: size in bytes, entries (every cpio member of every concatenated archive, early
# microcode cpio included, the way the kernel unpacks them), and boot-to-real-init time under QEMU
# TCG: the same qemu arguments as `ovm boot x86_64 --disk` (memory, kernel, append identical for
# all), a 64 MB ext4 virtio root made by `mke2fs -d` whose /sbin/init prints
# `OVM-BENCH-REAL-INIT root=FSTYPE` on the console and powers off; the time is from qemu's start to
# that line on the serial console, median of RUNS boots, the images interleaved round by round.
# Prints a table and ovm's ratios: ovm's size / the smallest peer's (goal <= 0.1) and ovm's boot
# time - the floor's (goal <= 1 s).
#
# The peers are made WITHOUT touching the host: a debootstrap'd bookworm under
# .cache/bench-initrd/chroot holds dracut-core, initramfs-tools-core, systemd, busybox, kmod,
# e2fsprogs, zstd and the kernel package's /boot and /lib/modules (apt-get download, unpacked with
# tar, then depmod: the .deb ships no modules.dep); every command in it runs in a private mount
# namespace (unshare -m), so its /proc, /sys and /dev mounts never reach the host's mount table. The
# kernel in that package is checked to be byte-for-byte the vmlinuz the boots use. Only Debian's
# archive is contacted. The chroot and the peers' images are cached (REBUILD=1 makes the images
# again, FRESH=1 the chroot too); ovm's image is rebuilt by `ovm build` (up to date: a no-op).
# x86_64 only: for aarch64 the peers would have to run in an emulated arm64 chroot.
#
# Usage: scripts/bench-initrd.sh            (root; needs debootstrap, qemu-system-x86_64, mke2fs,
#                                            python3, zstd; scripts/setup.sh installs them)
# Env: RUNS (3), MEM (qemu -m, MiB; 512 = ovm boot's default), APPEND (extra kernel arguments, added
#      after "console=ttyS0 panic=-1 root=UUID=… ro" for every image), TIMEOUT (s per boot, 300),
#      OVM_BIN (default: the release build), OVM_IMAGE (boot this initrd as ovm's instead of
#      building one), TOOLCHAIN (zig, the fast path, or gcc: config/ovm.toml's [toolchain] kind
#      for ovm's build), OVM_SSTATE_DIR (passed to ovm build; default .cache/sstate), OVM_MIRRORS
#      (default: sources/, what `ovm download` fills),
#      DEBIAN_MIRROR (http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/.cache/bench-initrd
ARCH=x86_64
RUNS=${RUNS:-3}
MEM=${MEM:-512}
TIMEOUT=${TIMEOUT:-300}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DRIVERS="virtio_blk virtio_pci ext4"
# Installed into the chroot: the two generators, what they pull into an image, and systemd so that
# dracut's default (generic) image is the systemd one a Debian system gets.
CHROOT_PACKAGES="dracut-core initramfs-tools-core systemd udev kmod e2fsprogs busybox zstd cpio"
# A fixed UUID: root=UUID=… is the same for every boot and every run.
ROOT_UUID=6f766d2d-6265-6e63-682d-696e69747264

die() { echo "bench-initrd: error: $*" >&2; exit 1; }
say() { echo "bench-initrd: $*"; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, unshare -m)"
for tool in debootstrap qemu-system-x86_64 mke2fs python3 zstd unshare chroot dpkg-deb sha256sum cpio gzip flock; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh)"
done
ASSETS=$ROOT/.cache/test-assets/$ARCH
KERNEL=$ASSETS/vmlinuz
BUSYBOX=$ASSETS/busybox
for f in "$KERNEL" "$BUSYBOX" "$ASSETS/PACKAGES" "$ASSETS/SHA256SUMS"; do
  [ -s "$f" ] || die "$f missing (run scripts/fetch-test-assets.sh)"
done
# "linux-image-6.1.0-57-amd64 6.1.192-3 amd64": the package and version the boot tests' kernel came from.
read -r KPKG KVERSION _ < <(grep '^linux-image-' "$ASSETS/PACKAGES") || die "no linux-image line in $ASSETS/PACKAGES"
KVER=${KPKG#linux-image-}
KSHA=$(awk '$2 == "vmlinuz" { print $1 }' "$ASSETS/SHA256SUMS")

load() { echo "$(nproc) CPUs, $(uptime | sed 's/.*load average/load average/')"; }
say "$(uname -sr) host, $(load)"
say "kernel $KPKG $KVERSION ($KVER), drivers: $DRIVERS"
mkdir -p "$BENCH"
# One run at a time: two would share the chroot, the images and the root disk (qemu refuses a disk
# another qemu holds, and the boots would time each other's load).
exec 9>"$BENCH/.lock"
flock -n 9 || die "another scripts/bench-initrd.sh is running in this repository ($BENCH/.lock)"

# ---------------------------------------------------------------------------------------------
# The chroot.
CHROOT=$BENCH/chroot
STAMP=$CHROOT/.ovm-bench-initrd
want_stamp="$CHROOT_PACKAGES | $KPKG $KVERSION | $KSHA"

# in_root DIR CMD...: CMD inside DIR, in a private mount namespace with /proc, /sys and /dev.
in_root() {
  local dir=$1; shift
  unshare --mount --propagation private -- /bin/sh -c '
    d=$1; shift
    mount -t proc proc "$d/proc" && mount -t sysfs sysfs "$d/sys" && mount --rbind /dev "$d/dev" &&
      exec chroot "$d" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"' _ "$dir" "$@"
}

make_chroot() {
  local tmp=$BENCH/chroot.tmp
  rm -rf "$tmp" "$BENCH/images"
  mkdir -p "$tmp"
  say "debootstrap bookworm (minbase) into $tmp (minutes, once)"
  # In its own mount namespace too: debootstrap mounts /proc and /sys in the target.
  unshare --mount --propagation private -- debootstrap --variant=minbase bookworm "$tmp" "$MIRROR" \
    >"$BENCH/debootstrap.log" 2>&1 || { tail -n 20 "$BENCH/debootstrap.log" >&2; die "debootstrap failed (log: $BENCH/debootstrap.log)"; }
  # No service starts from package scripts.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  # The host's apt sources (as scripts/fetch-test-assets.sh uses them): debootstrap's own list has
  # bookworm alone, while the pinned kernel may come from bookworm-security or -updates.
  if [ -d /etc/apt/sources.list.d ] && ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$tmp/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$tmp/etc/apt/sources.list.d/"
  fi
  if [ -s /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$tmp/etc/apt/sources.list"; fi
  say "installing $CHROOT_PACKAGES into the chroot"
  # shellcheck disable=SC2086
  in_root "$tmp" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $CHROOT_PACKAGES" \
    >"$BENCH/apt.log" 2>&1 || { tail -n 20 "$BENCH/apt.log" >&2; die "apt-get install in the chroot failed (log: $BENCH/apt.log)"; }
  say "unpacking $KPKG $KVERSION's /boot and /lib/modules into the chroot"
  mkdir -p "$tmp/var/tmp/kernel-deb"
  in_root "$tmp" sh -c "cd /var/tmp/kernel-deb && apt-get download -qq $KPKG=$KVERSION" >>"$BENCH/apt.log" 2>&1 ||
    die "apt-get download $KPKG=$KVERSION failed (log: $BENCH/apt.log)"
  # --keep-directory-symlink: the chroot's /lib is usrmerge's symlink to usr/lib, which a plain
  # dpkg-deb -x would replace by the package's lib/ directory.
  dpkg-deb --fsys-tarfile "$tmp"/var/tmp/kernel-deb/"${KPKG}"_*.deb |
    tar -x --keep-directory-symlink -C "$tmp" ./boot "./lib/modules/$KVER"
  rm -rf "$tmp/var/tmp/kernel-deb"
  local got
  got=$(sha256sum <"$tmp/boot/vmlinuz-$KVER" | cut -d' ' -f1)
  [ "$got" = "$KSHA" ] || die "$KPKG $KVERSION's vmlinuz ($got) is not $KERNEL ($KSHA)"
  in_root "$tmp" depmod -a "$KVER"
  echo "$want_stamp" >"$tmp/.ovm-bench-initrd"
  rm -rf "$CHROOT"
  mv "$tmp" "$CHROOT"
}

if [ "${FRESH:-0}" = 1 ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want_stamp" ]; then
  make_chroot
else
  say "chroot $CHROOT up to date"
fi
say "in the chroot: $(in_root "$CHROOT" dpkg-query -W -f '${Package} ${Version}\n' dracut-core initramfs-tools-core systemd busybox | paste -sd, | sed 's/,/, /g')"

# ---------------------------------------------------------------------------------------------
# The peers' images, made in the chroot, kept under $BENCH/images.
IMAGES=$BENCH/images
mkdir -p "$IMAGES" "$CHROOT/out"
peer_image() { # NAME CMD...: runs CMD in the chroot to make /out/NAME.img, unless cached
  local name=$1; shift
  if [ "${REBUILD:-0}" != 1 ] && [ -s "$IMAGES/$name.img" ] && [ "$IMAGES/$name.img" -nt "$STAMP" ]; then
    return
  fi
  say "making $name"
  rm -f "$CHROOT/out/$name.img"
  in_root "$CHROOT" "$@" >"$BENCH/$name.log" 2>&1 || { tail -n 20 "$BENCH/$name.log" >&2; die "$name failed (log: $BENCH/$name.log)"; }
  mv "$CHROOT/out/$name.img" "$IMAGES/$name.img"
}
peer_image dracut-min dracut --force --no-hostonly -m "base rootfs-block kernel-modules" \
  --drivers "$DRIVERS" --kver "$KVER" /out/dracut-min.img
peer_image dracut-generic dracut --force --no-hostonly --kver "$KVER" /out/dracut-generic.img
# initramfs-tools reads its configuration from a directory (-d): a copy of the installed one with
# MODULES=list and the drivers in its modules file, so the chroot's /etc stays as installed.
rm -rf "$CHROOT/out/initramfs-tools.conf"
cp -a "$CHROOT/etc/initramfs-tools" "$CHROOT/out/initramfs-tools.conf"
sed -i 's/^MODULES=.*/MODULES=list/' "$CHROOT/out/initramfs-tools.conf/initramfs.conf"
# shellcheck disable=SC2086 # the drivers, one word each
printf '%s\n' $DRIVERS >>"$CHROOT/out/initramfs-tools.conf/modules"
grep -q '^COMPRESS=zstd' "$CHROOT/out/initramfs-tools.conf/initramfs.conf" ||
  die "initramfs-tools' default compression is no longer zstd: check the comparison"
peer_image initramfs-tools mkinitramfs -d /out/initramfs-tools.conf -o /out/initramfs-tools.img "$KVER"

# The floor: busybox and an /init that prints the marker, nothing else.
FLOOR=$BENCH/floor
rm -rf "$FLOOR"
mkdir -p "$FLOOR/bin"
cp "$BUSYBOX" "$FLOOR/bin/busybox"
cat >"$FLOOR/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox echo "OVM-BENCH-REAL-INIT root=initramfs"
/bin/busybox reboot -f
EOF
chmod 0755 "$FLOOR/init"
# Fixed mtimes: the floor is the same bytes on every run.
find "$FLOOR" -exec touch -h -d @1700000000 {} +
(cd "$FLOOR" && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 2>/dev/null | gzip -9 -n) >"$IMAGES/floor.img"

# ---------------------------------------------------------------------------------------------
# ovm's image: `ovm build x86_64` of this repository's recipes, config and rootfs, in a scratch
# project (the repository's output/ is left alone); .cache/test-assets is shared, since
# config/ovm.toml takes the kernel's modules from there.
if [ -n "${OVM_IMAGE:-}" ]; then
  [ -s "$OVM_IMAGE" ] || die "OVM_IMAGE=$OVM_IMAGE is not a file"
  cp "$OVM_IMAGE" "$IMAGES/ovm.img"
  say "ovm: $OVM_IMAGE (OVM_IMAGE)"
else
  if [ -z "${OVM_BIN:-}" ]; then
    say "building ovm --release"
    OVM_BIN=$("$ROOT/scripts/ovm-bin.sh" --release)
  fi
  PROJ=$BENCH/ovm
  mkdir -p "$PROJ/.cache"
  for d in recipes config patches rootfs images; do
    rm -rf "${PROJ:?}/$d"
    cp -a "$ROOT/$d" "$PROJ/$d"
  done
  ln -sfn "$ROOT/.cache/test-assets" "$PROJ/.cache/test-assets"
  # The peers' drivers, no more: the config's [kernel] table is replaced by one naming them,
  # from the kernel `ovm boot` uses (the repository's config has it as a commented example).
  # shellcheck disable=SC2086 # the drivers, one word each
  modules=$(printf '"%s", ' $DRIVERS)
  awk '/^\[kernel\][ \t]*$/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$ROOT/config/ovm.toml" >"$PROJ/config/ovm.toml"
  printf '\n[kernel]\nmodules_from = ".cache/test-assets/ARCH/kernel"\nmodules = [%s]\n' "${modules%, }" >>"$PROJ/config/ovm.toml"
  # The toolchain only changes how busybox is compiled, not what the image holds; zig is the fast
  # path (minutes), TOOLCHAIN=gcc the repository's default (its first build: ~12 min per arch).
  sed -i "s/^kind = \"gcc\"$/kind = \"${TOOLCHAIN:-zig}\"/" "$PROJ/config/ovm.toml"
  [ -d "$ASSETS/kernel/lib/modules/$KVER" ] ||
    die "$ASSETS/kernel/lib/modules/$KVER missing (config/ovm.toml's modules_from; run scripts/fetch-test-assets.sh)"
  say "ovm build $ARCH, ${TOOLCHAIN:-zig} toolchain (from the shared-state cache, or built: minutes the first time)"
  OVM_SSTATE_DIR=${OVM_SSTATE_DIR:-$ROOT/.cache/sstate} OVM_MIRRORS="${OVM_MIRRORS:-$ROOT/sources}" \
    "$OVM_BIN" -q -C "$PROJ" build "$ARCH" >"$BENCH/ovm-build.log" 2>&1 ||
    { tail -n 20 "$BENCH/ovm-build.log" >&2; die "ovm build failed (log: $BENCH/ovm-build.log)"; }
  copy_image() { # NAME [DIR]: the image DIR/manifest.txt names (DIR: output/ARCH), to $IMAGES/NAME.img
    local image dir=${2:-$PROJ/output/$ARCH}
    image=$(awk -F'\t' '$1 == "# image" { print $2; exit }' "$dir/manifest.txt")
    [ -n "$image" ] && [ -s "$dir/$image" ] || die "no image named in $dir/manifest.txt"
    cp "$dir/$image" "$IMAGES/$1.img"
  }
  copy_image ovm
  # The same files in the other compressions ovm packs (smaller, slower to unpack under TCG).
  for c in xz zstd; do
    "$OVM_BIN" -q -C "$PROJ" pack "$ARCH" --compress "$c" >>"$BENCH/ovm-build.log" 2>&1 ||
      { tail -n 20 "$BENCH/ovm-build.log" >&2; die "ovm pack --compress $c failed (log: $BENCH/ovm-build.log)"; }
    copy_image "ovm-$c"
  done
  # images/initrd.toml: the image made for this job (busybox-mini, the same modules, xz).
  OVM_SSTATE_DIR=${OVM_SSTATE_DIR:-$ROOT/.cache/sstate} OVM_MIRRORS="${OVM_MIRRORS:-$ROOT/sources}" \
    "$OVM_BIN" -q -C "$PROJ" build "$ARCH" --image initrd >>"$BENCH/ovm-build.log" 2>&1 ||
    { tail -n 20 "$BENCH/ovm-build.log" >&2; die "ovm build --image initrd failed (log: $BENCH/ovm-build.log)"; }
  copy_image ovm-initrd "$PROJ/output/$ARCH/images/initrd"
  OVM_VARIANTS="ovm-xz ovm-zstd ovm-initrd"
fi

# ---------------------------------------------------------------------------------------------
# The real root: 64 MB of ext4 from a directory, /sbin/init prints the marker with the type of the
# file system mounted on / and powers off (qemu runs with -no-reboot).
DISKDIR=$BENCH/disk
rm -rf "$DISKDIR"
mkdir -p "$DISKDIR"/{bin,sbin,etc,proc,sys,dev,run,tmp}
cp "$BUSYBOX" "$DISKDIR/bin/busybox"
ln -s busybox "$DISKDIR/bin/sh"
cat >"$DISKDIR/sbin/init" <<'EOF'
#!/bin/busybox sh
# The initrd moved /dev and /proc here (an init without them still prints its line, on fd 1).
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
[ -r /proc/mounts ] || /bin/busybox mount -t proc proc /proc
fstype=$(/bin/busybox awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)
/bin/busybox echo "OVM-BENCH-REAL-INIT root=$fstype"
/bin/busybox reboot -f
EOF
chmod 0755 "$DISKDIR/sbin/init"
# systemd's switch-root wants an OS tree.
printf 'ID=ovm-bench\nPRETTY_NAME="ovm bench root"\n' >"$DISKDIR/etc/os-release"
rm -f "$BENCH/root.img"
truncate -s 64M "$BENCH/root.img"
mke2fs -q -F -t ext4 -U "$ROOT_UUID" -L ovmbench -E root_owner=0:0 -d "$DISKDIR" "$BENCH/root.img"

# ---------------------------------------------------------------------------------------------
# Counting and booting (python: concatenated cpio archives, timing against qemu's output).
cat >"$BENCH/bench.py" <<'PY'
import os, shutil, statistics, subprocess, sys, time

COMPRESSORS = [  # name, magic, decompressor
    ("gzip", b"\x1f\x8b", ["gzip", "-dc"]), ("zstd", b"\x28\xb5\x2f\xfd", ["zstd", "-dcq"]),
    ("xz", b"\xfd7zXZ\x00", ["xz", "-dc"]), ("lz4", b"\x02\x21\x4c\x18", ["lz4", "-dc"]),
    ("lzma", b"\x5d\x00\x00", ["xz", "-dc", "--format=lzma"]), ("bzip2", b"BZh", ["bzip2", "-dc"]),
]

def members(data, layers):
    """Entries of the initramfs `data` as the kernel unpacks it: newc/crc cpio archives, NUL padding
    between them, and a compressed tail that holds more of the same (early microcode + main).
    Appends to `layers` what it met: "cpio" for an uncompressed archive, the compressor's name."""
    out, pos = [], 0
    while pos < len(data):
        if data[pos] == 0:
            pos += 1
            continue
        magic = data[pos:pos + 6]
        if magic in (b"070701", b"070702"):
            layers.append("cpio")
            while True:
                hdr = data[pos:pos + 110]
                mode, size, namesize = int(hdr[14:22], 16), int(hdr[54:62], 16), int(hdr[94:102], 16)
                name = data[pos + 110:pos + 110 + namesize - 1].decode("utf-8", "replace")
                pos = (pos + 110 + namesize + 3) & ~3
                pos = (pos + size + 3) & ~3
                if name == "TRAILER!!!":
                    break
                out.append((name, mode, size))
            continue
        for fmt, m, cmd in COMPRESSORS:
            if data.startswith(m, pos):
                r = subprocess.run(cmd, input=data[pos:], capture_output=True)
                if not r.stdout:
                    sys.exit(f"bench-initrd: {' '.join(cmd)} failed at offset {pos}: {r.stderr.decode()}")
                layers.append(fmt)
                return out + members(r.stdout, [])
        sys.exit(f"bench-initrd: unknown data at offset {pos}: {data[pos:pos + 8]!r}")
    return out

def count(path):
    layers = []
    m = members(open(path, "rb").read(), layers)
    files = sum(1 for _, mode, _ in m if mode & 0o170000 == 0o100000)
    unpacked = sum(size for _, _, size in m)
    print(f"{os.path.getsize(path)} {len(m)} {files} {unpacked} {'+'.join(layers)}")

def boot(runs, timeout, log_dir, argv_file, names):
    """Boots each image `runs` times, round-robin; prints `name t1 t2 …` (s; FAIL when no marker)."""
    argvs = {}
    for line in open(argv_file):
        name, _, rest = line.rstrip("\n").partition("\t")
        argvs[name] = rest.split("\t")
    times = {n: [] for n in names}
    for r in range(runs):
        for name in names:
            disk = os.path.join(log_dir, "run-root.img")
            shutil.copyfile(os.path.join(log_dir, "root.img"), disk)
            log = open(os.path.join(log_dir, f"boot-{name}-{r + 1}.log"), "wb")
            t0 = time.monotonic()
            p = subprocess.Popen(argvs[name], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            os.set_blocking(p.stdout.fileno(), False)
            buf, seen, line = b"", None, ""
            while True:
                chunk = p.stdout.read()
                now = time.monotonic()
                if chunk:
                    log.write(chunk)
                    buf += chunk
                    i = buf.find(b"OVM-BENCH-REAL-INIT")
                    if seen is None and i >= 0 and b"\n" in buf[i:]:
                        seen = now - t0
                        line = buf[i:buf.index(b"\n", i)].decode("utf-8", "replace").strip()
                elif p.poll() is not None:
                    break
                if now - t0 > timeout or (seen is not None and now - t0 > seen + 10):
                    p.kill()
                    p.wait()
                    break
                if not chunk:
                    time.sleep(0.002)
            log.close()
            want = "root=initramfs" if name == "floor" else "root=ext4"
            ok = seen is not None and line.endswith(want)
            times[name].append(seen if ok else None)
            print(f"bench-initrd: round {r + 1} {name}: " + (f"{seen:.2f} s ({line})" if ok else
                  f"FAIL ({line or 'no marker'}; log {log.name})"), file=sys.stderr, flush=True)
    for name in names:
        print(name, " ".join("FAIL" if t is None else f"{t:.3f}" for t in times[name]))

if sys.argv[1] == "count":
    count(sys.argv[2])
else:
    boot(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:])
PY

NAMES="dracut-min dracut-generic initramfs-tools ovm ${OVM_VARIANTS:-} floor"
declare -A SIZE ENTRIES FILES UNPACKED FORMAT
for n in $NAMES; do
  read -r SIZE[$n] ENTRIES[$n] FILES[$n] UNPACKED[$n] FORMAT[$n] < <(python3 "$BENCH/bench.py" count "$IMAGES/$n.img")
done

# The qemu command line of `ovm boot x86_64 --disk root.img` (qemu_command_line in src/boot/mod.rs), one
# per image; only -initrd differs.
append="console=ttyS0 panic=-1 root=UUID=$ROOT_UUID ro${APPEND:+ $APPEND}"
: >"$BENCH/argv.tsv"
for n in $NAMES; do
  printf '%s' "$n" >>"$BENCH/argv.tsv"
  printf '\t%s' qemu-system-x86_64 -accel tcg -m "$MEM" -smp 1 -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$IMAGES/$n.img" -append "$append" \
    -drive "file=$BENCH/run-root.img,if=none,format=raw,id=disk0" -device virtio-blk-pci,drive=disk0 >>"$BENCH/argv.tsv"
  printf '\n' >>"$BENCH/argv.tsv"
done

say "booting each image $RUNS times, interleaved (TCG, -m $MEM, append: $append); $(load)"
# shellcheck disable=SC2086
boots=$(python3 "$BENCH/bench.py" boot "$RUNS" "$TIMEOUT" "$BENCH" "$BENCH/argv.tsv" $NAMES)
say "after the boots: $(load)"

echo "$boots" | while read -r n rest; do
  echo "$n ${SIZE[$n]} ${ENTRIES[$n]} ${FILES[$n]} ${UNPACKED[$n]} ${FORMAT[$n]} $rest"
done | awk -v runs="$RUNS" '
  function median(s,   a, n, i, j, t, k) {  # median of the numbers in s; "-" when any run failed
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) if (a[i] == "FAIL") return "-"
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    name[NR] = $1; size[$1] = $2; ent[$1] = $3; files[$1] = $4; unp[$1] = $5; fmt[$1] = $6
    s = ""; for (i = 7; i <= NF; i++) s = s (i > 7 ? " " : "") $i
    runs_of[$1] = s; med[$1] = median(s); nr = split(s, t, " "); for (r = 1; r <= nr; r++) run[$1, r] = t[r]
  }
  function paired(n,   r, d, s) {  # median over rounds of n minus the floor in the same round
    for (r = 1; r <= runs; r++) {
      if (run[n, r] == "FAIL" || run["floor", r] == "FAIL") return "-"
      s = s (r > 1 ? " " : "") (run[n, r] - run["floor", r])
    }
    return median(s)
  }
  END {
    printf "\n%-16s %12s %-6s %8s %8s %12s %8s   %s\n", "image", "bytes", "format", "entries", "files", "unpacked", "boot s", "runs (s)"
    for (i = 1; i <= NR; i++) {
      n = name[i]
      printf "%-16s %12d %-6s %8d %8d %12d %8s   %s\n", n, size[n], fmt[n], ent[n], files[n], unp[n], med[n] == "-" ? "-" : sprintf("%.2f", med[n]), runs_of[n]
    }
    smallest = ""
    for (i = 1; i <= NR; i++) {
      n = name[i]
      if (n ~ /^ovm/ || n == "floor") continue
      if (smallest == "" || size[n] < size[smallest]) smallest = n
    }
    printf "\novm size / smallest peer (%s): %.3f (goal <= 0.1)\n", smallest, size["ovm"] / size[smallest]
    if ("ovm-initrd" in size) printf "ovm-initrd size / smallest peer (%s): %.4f (goal <= 0.1)\n", smallest, size["ovm-initrd"] / size[smallest]
    for (i = 1; i <= NR; i++) {
      n = name[i]
      if (n == "floor") continue
      if (n ~ /^ovm-/) printf "  %-15s size / %s %.3f\n", n ":", smallest, size[n] / size[smallest]
      else if (n != "ovm") printf "  ovm size / %-16s %.3f   entries %d vs %d\n", n ":", size["ovm"] / size[n], ent["ovm"], ent[n]
    }
    if (med["ovm"] == "-" || med["floor"] == "-") print "ovm boot time - floor: - (a boot did not reach the real init; see the logs above)"
    else printf "ovm boot time - floor: %+.2f s (goal <= 1 s)\n", med["ovm"] - med["floor"]
    if (("ovm-initrd" in med) && med["ovm-initrd"] != "-" && med["floor"] != "-")
      printf "ovm-initrd boot time - floor: %+.2f s (goal <= 1 s)\n", med["ovm-initrd"] - med["floor"]
    for (i = 1; i <= NR; i++) {
      n = name[i]
      if (n == "floor" || med[n] == "-") continue
      printf "  %-16s boot - floor %+.2f s (median of the per-round differences %+.2f s)\n", n ":", med[n] - med["floor"], paired(n)
    }
  }'
