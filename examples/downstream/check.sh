#!/usr/bin/env bash
# Builds examples/downstream as a user would: in a directory outside this repository (so
# none of its cargo configuration applies), depending on constnet by path, with no RUSTFLAGS,
# then runs it: it exits non-zero unless it runs the kernel path the CPU's features call for.
# Extra arguments go to the program (`--bench` prints constnet bench's table from this build).
# The README's library sample (the first ```rust block after "## The library") is pasted into
# the same crate as a second program, `readme`, built and run as it stands: the sample must
# compile in a new crate, as the README promises.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${DOWNSTREAM_DIR:-$(mktemp -d)}"
mkdir -p "$work"
cp -r "$repo/examples/downstream/Cargo.toml" "$repo/examples/downstream/src" "$work/"
cp "$repo/Cargo.lock" "$work/"   # the same dependency versions, no network needed
mkdir -p "$work/src/bin"
awk '/^## The library/ { section = 1 }
     section && /^```rust$/ { inside = 1; found = 1; next }
     inside && /^```$/ { exit }
     inside { print }
     END { if (!found) exit 1 }' "$repo/README.md" > "$work/src/bin/readme.rs" ||
    { echo "check.sh: no \`\`\`rust block after '## The library' in README.md" >&2; exit 1; }
sed -i "s|path = \"../..\"|path = \"$repo\"|" "$work/Cargo.toml"
cd "$work"
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_TARGET_DIR \
    cargo build --release --quiet --offline
./target/release/constnet-downstream "$@"
echo "the README's library sample, pasted into a new crate:"
./target/release/readme
