#!/usr/bin/env bash
# Builds examples/downstream as a user would: in a directory outside this repository (so
# none of its cargo configuration applies), depending on constnet by path, with no RUSTFLAGS,
# then runs it: it exits non-zero unless it runs the kernel path the CPU's features call for.
# Extra arguments go to the program (`--bench` prints constnet bench's table from this build).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${DOWNSTREAM_DIR:-$(mktemp -d)}"
mkdir -p "$work"
cp -r "$repo/examples/downstream/Cargo.toml" "$repo/examples/downstream/src" "$work/"
cp "$repo/Cargo.lock" "$work/"   # the same dependency versions, no network needed
sed -i "s|path = \"../..\"|path = \"$repo\"|" "$work/Cargo.toml"
cd "$work"
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_TARGET_DIR \
    cargo build --release --quiet --offline
./target/release/constnet-downstream "$@"
