#!/usr/bin/env bash
# The whole test suite: the test command of README "Quick start: the two commands", and what .ci/run calls.
# Installs what the tests need (scripts/setup.sh), checks formatting and lints, then runs
# every test tier that belongs to a normal run (unit, integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --no-fail-fast -- --test-threads="${OVM_TEST_THREADS:-2}"
