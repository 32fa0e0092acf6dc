#!/usr/bin/env bash
# Installs everything ovm's tests and default build need on a fresh Debian 12 machine:
# Debian packages, the test user, test assets (kernels, Debian's static busybox per arch), the
# container tests' base rootfs, and a running Docker daemon.
# Idempotent: a second run only checks. Needs root (or sudo) for apt-get and useradd.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# One line per package, with the reason it is needed.
PACKAGES=(
  ca-certificates   # TLS to mirrors
  musl-tools        # building ovm: musl-gcc compiles the C parts of its dependencies (ring, liblzma, zstd)
  file              # tests inspect ELF headers
  debian-archive-keyring  # signs the deb-src indexes ovm's Debian source fallback reads
  curl              # scripts/fetch-zig.sh downloads the pinned zig wheel
  unzip             # … and unpacks it
  make              # recipes/tools/make.toml: the host make builds the sandbox's static GNU make
  autoconf          # … and Debian's make-dfsg source needs autoreconf (toolchain profile, host /usr);
  automake          #   so do recipes with `autoreconf = true` (cryptsetup's git-archive source)
  autopoint
  libtool           # … libtoolize, for those whose configure.ac has LT_INIT
  pkgconf           # … pkg.m4: make's configure.ac uses PKG_PROG_PKG_CONFIG
  cpio              # pack: round-trip tests list/extract with GNU cpio; bench peer
  libarchive-tools  # pack: round-trip tests list with bsdtar
  pigz              # pack: bench peer (pigz -9 -n)
  xz-utils          # pack: bench peer (xz -6 --check=crc32)
  zstd              # pack: bench peer (zstd -19)
  python3           # pack: bench-pack.sh generates its tree
  qemu-system-x86   # boot: qemu-system-x86_64
  qemu-system-arm   # boot: qemu-system-aarch64
  e2fsprogs         # boot: mke2fs -d makes the ext4 root disks the e2e tests switch_root into
  busybox-static    # sandbox tests: the static userland bound into strict sandboxes (/bin/busybox)
  runc              # sandbox tests: runs `ovm sandbox --bundle` output to compare with ovm's runtime
  gcc               # default build: the host compiler of the gcc toolchain (toolchain profile, host /usr);
                    # sandbox tests: compile the C probes in tests/fixtures/sandbox (cc -static)
  g++               # default build: gcc 12 is written in C++
  m4                # default build: gmp's configure (gcc's in-tree gmp)
  libc6-dev         # static glibc: the toolchain's static host binaries, the sandbox tests' probes
  util-linux        # sandbox tests: setpriv (run as the unprivileged test user), unshare
  bsdutils          # sandbox tests: script (a pseudo-terminal for the TIOCSTI and job-control tests)
  keyutils          # sandbox tests: keyctl (a session keyring holding a secret the sandbox must not reach)
  qemu-user         # engine tests: run the aarch64 test program (qemu-aarch64)
  zlib1g-dev        # engine tests: a host libz the hermeticity test must not be able to link
  locales           # repro test: a non-C locale (de_DE.UTF-8, generated below) for one build
  diffoscope-minimal  # scripts/repro-check.sh: shows how the first differing file differs
  podman            # container test: ovm inside rootless Podman (tests/container/container_podman.rs)
  uidmap            # … newuidmap/newgidmap and subordinate ids for the rootless user
  debootstrap       # … the container's base rootfs (scripts/container-base.sh; no registry here)
  kmod              # pack tests: depmod and modprobe --show-depends check ovm's module resolution
  chromium          # cli tests: `ovm graph`'s SVGs are opened in headless Chromium (not blank, names the packages)
  graphviz          # … and depends.dot must be accepted by `dot -Tsvg` (ovm itself never needs graphviz)
  libncurses-dev    # ovm menuconfig: kconfig's menu is compiled by the host cc against ncurses, in the
                    # toolchain profile (host /usr read-only); the strict package sandbox has no ncurses
  nginx-light       # cache tests: a real WebDAV server as the remote shared-state cache (tests/cache/)
  tmux              # cli tests: drive `ovm menuconfig` with send-keys and read the menu with capture-pane
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ovm itself is built for musl (.cargo/config.toml says why): rustup adds that target's standard
# library. CARGO_BUILD_TARGET chooses another target (an aarch64 host, or a glibc build) instead.
rust_target=${CARGO_BUILD_TARGET:-$(sed -n 's/^target = "\(.*\)"/\1/p' .cargo/config.toml)}
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$rust_target/lib" ]; then
  if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: error: the Rust target $rust_target is not installed and there is no rustup to add it;" >&2
    echo "       install it, or build for another target: CARGO_BUILD_TARGET=$(rustc -vV | sed -n 's/^host: //p')" >&2
    exit 1
  fi
  echo "setup: adding the Rust target $rust_target"
  rustup target add "$rust_target"
fi

scripts/fetch-zig.sh

# The reproducibility test builds once under de_DE.UTF-8: generate it unless it exists.
if ! locale -a 2>/dev/null | grep -qix 'de_DE.utf8'; then
  echo "setup: generating the de_DE.UTF-8 locale"
  $SUDO localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi

# Kernels and busybox-static for both arches, for the pack/boot tests (into .cache/test-assets).
scripts/fetch-test-assets.sh

# The container tests' base image, a debootstrap'd Debian rootfs (into .cache/container).
scripts/container-base.sh

# Docker for tests/container/container_docker.rs: Debian's docker.io when there is no `docker` at
# all (a machine with Docker's own docker-ce packages keeps them: docker.io would conflict with
# them), and a daemon that answers. Debian's package starts the daemon under systemd; without
# systemd (a container, a minimal VM) it is started here in the background, logging to
# $dockerd_log. Either way `docker info` must answer within $docker_wait seconds.
dockerd_log=/var/log/dockerd.log
docker_wait=60
if ! command -v docker >/dev/null 2>&1; then
  echo "setup: installing docker.io"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker.io
fi
if ! $SUDO docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    echo "setup: starting the Docker daemon (systemctl start docker)"
    $SUDO systemctl start docker
  else
    echo "setup: starting the Docker daemon in the background (dockerd, log: $dockerd_log)"
    $SUDO sh -c "setsid dockerd >>'$dockerd_log' 2>&1 </dev/null &"
  fi
  waited=0
  until $SUDO docker info >/dev/null 2>&1; do
    if [ "$waited" -ge "$docker_wait" ]; then
      echo "setup: error: the Docker daemon does not answer \`docker info\` after ${docker_wait} s" \
        "(systemd: journalctl -u docker; otherwise $dockerd_log)" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "setup: the Docker daemon answers (after ${waited} s)"
fi
echo "setup: done"
