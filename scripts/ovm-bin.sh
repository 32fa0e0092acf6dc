#!/usr/bin/env bash
# Builds ovm and prints the path of the executable: `scripts/ovm-bin.sh [--release]`.
# Where cargo puts it depends on the build target (.cargo/config.toml, or CARGO_BUILD_TARGET), so
# scripts ask cargo rather than spell out target/…/ovm. Builds from the repository root: cargo
# reads .cargo/config.toml from the working directory, not from the manifest's.
set -euo pipefail
cd "$(dirname "$0")/.."
exe=$(cargo build --quiet --bin ovm "$@" --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  echo "ovm-bin: cargo reported no ovm executable" >&2
  exit 1
fi
echo "$exe"
