#!/usr/bin/env bash
# The web example's tests, in one command: builds the page (build.sh) and the native
# reference, runs the node tests (test/node.mjs), then the browser test (test/browser.mjs) when
# chromium and chromedriver are installed, and says so when it skips it. Installs nothing.
#
#   examples/web/run-tests.sh
#
# Needs: the wasm32 target (rustup target add wasm32-unknown-unknown), node >= 18, and the
# MNIST files in $MNIST_DIR (default: ./data/mnist, else ../shared/data/mnist as in .ci/run).
# For the browser test, on Debian: apt-get install chromium chromium-driver ($CHROMIUM and
# $CHROMEDRIVER override where they are). Screenshots land in target/web-test/.
set -euo pipefail

web="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$web/../.." && pwd)"
cd "$root"

if [ -z "${MNIST_DIR:-}" ]; then
    if [ -d data/mnist ]; then MNIST_DIR=data/mnist; else MNIST_DIR=../shared/data/mnist; fi
fi
MNIST_DIR="$(cd "$MNIST_DIR" && pwd)" || { echo "run-tests.sh: no MNIST files: set MNIST_DIR" >&2; exit 1; }
export MNIST_DIR
echo "MNIST_DIR=$MNIST_DIR"

if ! command -v node >/dev/null; then
    echo "run-tests.sh: the tests need node (18 or later)" >&2
    exit 1
fi

"$web/build.sh"

echo "== native reference (examples/web/native, the best kernel path of this CPU)"
CARGO_TARGET_DIR="$root/target/web/native" nice -n 10 \
    cargo build --release --quiet --manifest-path "$web/native/Cargo.toml"

echo "== node $(node --version): test/node.mjs"
node --test-reporter=spec "$web/test/node.mjs"

echo "== Chromium: test/browser.mjs"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver || true)}"
if [ -n "$CHROMIUM" ] && [ -n "$CHROMEDRIVER" ]; then
    echo "$("$CHROMIUM" --version 2>/dev/null | tail -n 1), $("$CHROMEDRIVER" --version | cut -d' ' -f1-2)"
    CHROMIUM="$CHROMIUM" CHROMEDRIVER="$CHROMEDRIVER" node --test-reporter=spec "$web/test/browser.mjs"
    echo "web tests passed (node and Chromium); screenshots in target/web-test/"
else
    echo "SKIPPED the browser test: chromium and chromedriver are not both installed"
    echo "  (on Debian: apt-get install chromium chromium-driver)"
    echo "web tests passed (node only)"
fi
