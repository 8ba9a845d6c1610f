#!/usr/bin/env bash
# Builds what the page loads into examples/web/pkg/ (not committed: it is made from the source):
#
#   pkg/constnet-simd128.wasm   the module (wasm/) with WebAssembly SIMD (-C target-feature=+simd128)
#   pkg/constnet-scalar.wasm    the same without SIMD, for engines that lack it
#   pkg/model.cnet              a trained MnistMlp as a raw blob (constnet export --raw)
#   pkg/model.int8.cnet         the same network quantized to int8 (constnet quantize --raw)
#   pkg/model.json              each blob's size and test accuracy, shown on the page
#
# Usage: examples/web/build.sh [--model M.safetensors | --model M.cnet]
#
# Without --model it keeps an existing pkg/model.cnet, or else trains one (3 epochs, a few
# seconds) on the MNIST files in $MNIST_DIR (default: ./data/mnist, as for `constnet train`).
# The int8 blob is made from pkg/model.cnet whenever it is missing or older; quantizing
# calibrates on the MNIST training images, so without them the page has the f32 model only.
# Needs the wasm32 target: rustup target add wasm32-unknown-unknown. Uses wasm-opt (binaryen)
# when it is installed to shrink the modules a little; the page works the same without it.
# Then: python3 -m http.server -d examples/web 8000, and open http://localhost:8000/.
set -euo pipefail

web="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$web/../.." && pwd)"
pkg="$web/pkg"
target="$root/target/web"
model=""
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="$2"; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$model" ]; then model="$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"; fi
cd "$root"
mkdir -p "$pkg" "$target"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "build.sh: the wasm32 target is missing; install it with:" >&2
    echo "    rustup target add wasm32-unknown-unknown" >&2
    exit 1
fi

# The features rustc enables by default on wasm32-unknown-unknown, which wasm-opt must accept.
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
    --enable-mutable-globals --enable-multivalue --enable-reference-types)

# build_variant NAME RUSTFLAGS [extra wasm-opt flags]
build_variant() {
    local name="$1" flags="$2"
    shift 2
    echo "== wasm module, $name (RUSTFLAGS=\"$flags\")"
    # RUSTFLAGS chooses wide's instructions at compile time on wasm32 (simd128 or none). One
    # target directory per variant, so neither rebuilds the other's dependencies.
    RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target/$name" nice -n 10 \
        cargo build --release --quiet --target wasm32-unknown-unknown \
        --manifest-path "$web/wasm/Cargo.toml"
    local built="$target/$name/wasm32-unknown-unknown/release/constnet_web.wasm"
    local out="$pkg/constnet-$name.wasm"
    if command -v wasm-opt >/dev/null; then
        wasm-opt -Oz "${WASM_OPT_FEATURES[@]}" "$@" "$built" -o "$out"
        echo "   $(wc -c <"$built") bytes from rustc, $(wc -c <"$out") after wasm-opt -Oz"
    else
        cp "$built" "$out"
        echo "   $(wc -c <"$out") bytes (wasm-opt not installed: not optimised further)"
    fi
}

build_variant simd128 "-C target-feature=+simd128" --enable-simd
build_variant scalar ""

# The constnet command (built natively, with the repository's settings), once, when needed.
constnet=""
need_constnet() {
    if [ -z "$constnet" ]; then
        echo "== constnet (native, for training and export)"
        nice -n 10 cargo build --release --quiet --bin constnet
        constnet="$root/target/release/constnet"
    fi
}

if [ -n "$model" ]; then
    case "$model" in
        *.cnet) cp "$model" "$pkg/model.cnet" ;;
        *) need_constnet; "$constnet" export --model "$model" --raw --out "$pkg/model.cnet" ;;
    esac
    rm -f "$pkg/model.json" "$pkg/model.int8.cnet"
elif [ ! -f "$pkg/model.cnet" ]; then
    need_constnet
    echo "== training a model (3 epochs) on ${MNIST_DIR:-./data/mnist}"
    "$constnet" train --epochs 3 --out "$target/model.safetensors" | tail -n 1
    "$constnet" export --model "$target/model.safetensors" --raw --out "$pkg/model.cnet"
    rm -f "$pkg/model.json" "$pkg/model.int8.cnet"
fi

if [ ! "$pkg/model.int8.cnet" -nt "$pkg/model.cnet" ]; then
    need_constnet
    echo "== int8 model (constnet quantize --raw, calibrated on ${MNIST_DIR:-./data/mnist})"
    rm -f "$pkg/model.int8.cnet" "$pkg/model.json"
    if ! "$constnet" quantize --model "$pkg/model.cnet" --raw --out "$pkg/model.int8.cnet" |
        grep '^test accuracy'; then
        echo "build.sh: no int8 model (quantizing needs the MNIST training images): the page has the f32 one only" >&2
        rm -f "$pkg/model.int8.cnet"
    fi
fi

# describe FILE: a JSON object with the blob's size and, if the MNIST files are at hand, its
# test accuracy.
describe() {
    local accuracy
    if accuracy="$("$constnet" eval --model "$1" 2>/dev/null |
        sed -n 's/^test accuracy: \([0-9.]*%\).*/\1/p')" && [ -n "$accuracy" ]; then
        printf '{ "bytes": %d, "testAccuracy": "%s" }' "$(wc -c <"$1")" "$accuracy"
    else
        printf '{ "bytes": %d }' "$(wc -c <"$1")"
    fi
}

if [ ! -f "$pkg/model.json" ]; then
    # Each model's size and test accuracy, for the page's footer, keyed by kind.
    need_constnet
    {
        printf '{ "f32": %s' "$(describe "$pkg/model.cnet")"
        if [ -f "$pkg/model.int8.cnet" ]; then printf ', "int8": %s' "$(describe "$pkg/model.int8.cnet")"; fi
        printf ' }\n'
    } >"$pkg/model.json"
fi

echo "== $pkg"
ls -l "$pkg" | tail -n +2
echo "Serve it: python3 -m http.server -d examples/web 8000   (then open http://localhost:8000/)"
