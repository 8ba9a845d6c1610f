#!/usr/bin/env bash
# The Cortex-M4 firmware test: the firmware classifies the first 1,000 MNIST test images under
# QEMU (mps2-an386), and its predictions must be the host's, through the same library.
#
#   examples/cortex-m4/run-test.sh [MODEL]
#
# MODEL is a f32 or int8 model, safetensors or raw blob; without it a model is trained for one
# epoch on one thread (~2 s). The firmware runs the int8 model (MODEL_KIND=int8, the default:
# a f32 model is quantized with `constnet quantize --raw`) or the f32 one (MODEL_KIND=f32:
# `constnet export --raw`). Steps: (a) train or take the model, (b) make the raw blob, (c)
# extract the first 1,000 test images and labels, (d) build the firmware in release, (e) run
# it under QEMU with a timeout, (f) compute the host's predictions with host-check, (g)
# compare, then report the firmware's size with and without the images.
#
# The host runs host-check twice, on two kernel paths of one build:
# - int8: on `CONSTNET_SIMD=scalar` and on the host's best path (AVX-512 VNNI here); integer
#   arithmetic is the same everywhere, so both must agree exactly, image by image;
# - f32: `CONSTNET_SIMD=scalar` (one lane, multiply then add: the same operations in the same
#   order as the firmware, whose best path on a Cortex-M4 is the scalar one) must agree
#   exactly; the host's best path (FMA, 16 lanes with AVX-512) rounds differently: a
#   prediction may differ only where the host's two largest logits are within $TOLERANCE
#   (default 1e-4; the logits of the two arithmetics were measured at most 4e-6 apart).
#
# Environment: MODEL_KIND (int8 or f32), MNIST_DIR (default ./data/mnist, else
# ../shared/data/mnist from the repository root), QEMU_TIMEOUT seconds (default 600),
# TOLERANCE, KEEP_TMP=1 to keep the work directory.
# Installs nothing: needs cargo, the thumbv7em-none-eabihf target and qemu-system-arm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
TOLERANCE="${TOLERANCE:-1e-4}"
MODEL_KIND="${MODEL_KIND:-int8}"
case "$MODEL_KIND" in int8 | f32) ;; *) echo "run-test.sh: MODEL_KIND=$MODEL_KIND is not int8 or f32" >&2; exit 1 ;; esac
QEMU_TIMEOUT="${QEMU_TIMEOUT:-600}"
COUNT=1000
TARGET=thumbv7em-none-eabihf

die() { echo "run-test.sh: $*" >&2; exit 1; }
step() { echo; echo "-- $*"; }

# Prerequisites: say what is missing and how to get it.
command -v cargo >/dev/null || die "cargo is not installed"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"
command -v qemu-system-arm >/dev/null ||
    die "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)"
qemu-system-arm -machine help | grep -q '^mps2-an386 ' ||
    die "this qemu-system-arm ($(qemu-system-arm --version | head -n 1)) has no mps2-an386 machine (QEMU 6.0 or later has)"
[ -d "$(rustc --print sysroot)/lib/rustlib/$TARGET" ] ||
    die "the Rust target $TARGET is not installed (rustup target add $TARGET)"

if [ -z "${MNIST_DIR:-}" ]; then
    MNIST_DIR="$repo/data/mnist"
    [ -d "$MNIST_DIR" ] || MNIST_DIR="$repo/../shared/data/mnist"
fi
[ -d "$MNIST_DIR" ] || die "no MNIST directory at $MNIST_DIR (set MNIST_DIR)"
MNIST_DIR="$(cd "$MNIST_DIR" && pwd)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/constnet-cortex-m4.XXXXXX")"
if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "work directory: $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi

step "(a) the model"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac # cargo runs in $repo
(cd "$repo" && nice -n 10 cargo build --release --quiet --bin constnet)
constnet="$target_dir/release/constnet"
[ -x "$constnet" ] || die "cargo built no $constnet"
if [ $# -ge 1 ]; then
    model="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    [ -f "$model" ] || die "no model file $1"
    echo "given: $model"
else
    model="$tmp/model.safetensors"
    "$constnet" train --epochs 1 --threads 1 --data "$MNIST_DIR" --out "$model" | tail -n 1
fi

step "(b) the raw blob ($MODEL_KIND)"
hex() { head -c "$2" "$1" | od -An -tx1 | tr -d ' \n'; } # FILE BYTES: the first bytes in hex
magic="$(hex "$model" 8)"
is_int8_safetensors() { head -c 65536 "$model" | grep -q '"constnet.int8"'; }
if [ "$MODEL_KIND" = int8 ]; then
    if [ "$magic" = 434e455451380000 ]; then # "CNETQ8\0\0"
        cp "$model" "$tmp/model.cnet"
        echo "the model is already an int8 raw blob"
    elif [ "$magic" != 434e455452415700 ] && is_int8_safetensors; then
        "$constnet" export --model "$model" --raw --out "$tmp/model.cnet"
    else
        "$constnet" quantize --model "$model" --raw --out "$tmp/model.cnet" --data "$MNIST_DIR"
    fi
elif [ "$magic" = 434e455452415700 ]; then # "CNETRAW\0"
    cp "$model" "$tmp/model.cnet"
    echo "the model is already a raw blob"
else
    "$constnet" export --model "$model" --raw --out "$tmp/model.cnet"
fi

step "(c) the first $COUNT test images and labels"
# IDX files: a big-endian header (magic, then one u32 per dimension), then the bytes. Raw or
# gzipped; only the first bytes are read.
first_bytes() { # FILE BYTES OUT
    local file="$MNIST_DIR/$1"
    if [ -f "$file" ]; then
        head -c "$2" "$file" > "$3"
    elif [ -f "$file.gz" ]; then
        { gzip -dc "$file.gz" || true; } | head -c "$2" > "$3"
    else
        die "no $1 (or $1.gz) in $MNIST_DIR"
    fi
}
first_bytes t10k-images-idx3-ubyte $((16 + COUNT * 784)) "$tmp/images.idx"
first_bytes t10k-labels-idx1-ubyte $((8 + COUNT)) "$tmp/labels.idx"
[ "$(hex "$tmp/images.idx" 4)" = 00000803 ] || die "t10k-images-idx3-ubyte is not an IDX image file"
[ "$(hex "$tmp/labels.idx" 4)" = 00000801 ] || die "t10k-labels-idx1-ubyte is not an IDX label file"
tail -c +17 "$tmp/images.idx" > "$tmp/images.u8"
tail -c +9 "$tmp/labels.idx" > "$tmp/labels.u8"
[ "$(wc -c < "$tmp/images.u8")" -eq $((COUNT * 784)) ] || die "fewer than $COUNT test images"
[ "$(wc -c < "$tmp/labels.u8")" -eq "$COUNT" ] || die "fewer than $COUNT test labels"
echo "$COUNT images, $COUNT labels"

# The firmware builds from its own directory, so its .cargo/config.toml applies (target,
# target-cpu=cortex-m4); flags or a target directory from the caller's environment do not.
build_firmware() {
    (cd "$here" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_TARGET_DIR \
        CONSTNET_MODEL="$tmp/model.cnet" CONSTNET_IMAGES="$tmp/images.u8" \
        CONSTNET_LABELS="$tmp/labels.u8" nice -n 10 cargo build --release --quiet "$@")
}
elf="$here/target/$TARGET/release/constnet-cortex-m4"

step "(d) the firmware (release, $TARGET)"
build_firmware
cp "$elf" "$tmp/firmware-with-images.elf"
echo "$elf"

step "(e) the firmware under QEMU (timeout ${QEMU_TIMEOUT} s)"
qemu=(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic
    -semihosting-config enable=on,target=native -kernel "$tmp/firmware-with-images.elf")
echo "${qemu[*]}"
start=$(date +%s%N)
status=0
timeout "$QEMU_TIMEOUT" "${qemu[@]}" < /dev/null > "$tmp/qemu.stdout" 2> "$tmp/qemu.stderr" || status=$?
ms=$((($(date +%s%N) - start) / 1000000))
if [ "$status" -eq 124 ]; then
    cat "$tmp/qemu.stdout" "$tmp/qemu.stderr" >&2
    die "QEMU did not finish within $QEMU_TIMEOUT s (QEMU_TIMEOUT)"
elif [ "$status" -ne 0 ]; then
    cat "$tmp/qemu.stdout" "$tmp/qemu.stderr" >&2
    die "the firmware failed under QEMU (exit status $status)"
fi
cat "$tmp/qemu.stdout"
grep '^time: ' "$tmp/qemu.stderr" || true
printf 'QEMU ran for %d.%03d s (wall clock)\n' $((ms / 1000)) $((ms % 1000))

step "(f, g) the host's predictions, compared"
host_triple="$(rustc -vV | sed -n 's/^host: //p')"
# --target: the firmware's .cargo/config.toml (a parent of host/) sets the ARM target.
(cd "$here/host" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS CARGO_TARGET_DIR="$here/host/target" \
    nice -n 10 cargo build --release --quiet --target "$host_triple")
host_check() { # SIMD-PATH CHECK...
    local path="$1"
    shift
    CONSTNET_SIMD="$path" "$here/host/target/$host_triple/release/host-check" \
        --model "$tmp/model.cnet" --images "$tmp/images.u8" --labels "$tmp/labels.u8" \
        --firmware-out "$tmp/qemu.stdout" --firmware-err "$tmp/qemu.stderr" "$@"
}
failed=0
if [ "$MODEL_KIND" = int8 ]; then
    echo "host on its scalar kernel path: integer arithmetic, so exactly equal"
    host_check scalar --exact || failed=1
    echo "host on its best kernel path: integer arithmetic, so exactly equal too"
    host_check "" --exact || failed=1
else
    echo "host on its scalar kernel path: the Cortex-M4's arithmetic, so exactly equal"
    host_check scalar --exact || failed=1
    echo "host on its best kernel path: equal except near ties"
    host_check "" --tolerance "$TOLERANCE" || failed=1
fi

step "size (flash = text + data, RAM = data + bss + stack)"
size_tool=""
for t in arm-none-eabi-size \
    "$(rustc --print sysroot)/lib/rustlib/$host_triple/bin/llvm-size" llvm-size; do
    if command -v "$t" >/dev/null 2>&1; then size_tool="$t"; break; fi
done
stack="$(sed -n 's/^time: .*stack: \([0-9]*\) bytes$/\1/p' "$tmp/qemu.stderr")"
if [ -z "$size_tool" ]; then
    echo "no size tool (apt-get install binutils-arm-none-eabi, or rustup component add llvm-tools)"
else
    build_firmware --no-default-features
    cp "$elf" "$tmp/firmware-model-only.elf"
    timeout "$QEMU_TIMEOUT" "${qemu[@]/firmware-with-images.elf/firmware-model-only.elf}" < /dev/null \
        > "$tmp/model-only.stdout" 2> "$tmp/model-only.stderr" || true
    stack_model_only="$(sed -n 's/^time: .*stack: \([0-9]*\) bytes$/\1/p' "$tmp/model-only.stderr")"
    "$size_tool" "$tmp/firmware-with-images.elf" "$tmp/firmware-model-only.elf"
    "$size_tool" "$tmp/firmware-with-images.elf" "$tmp/firmware-model-only.elf" |
        awk -v s1="${stack:-?}" -v s2="${stack_model_only:-?}" 'NR > 1 {
            n = split($6, p, "/"); name = p[n]; stack = (NR == 2) ? s1 : s2
            printf "%-28s flash %8d bytes, RAM %d bytes static + %s bytes stack\n",
                name, $1 + $2, $2 + $3, stack }'
fi

echo
if [ "$failed" -ne 0 ]; then
    die "FAILED: the firmware's predictions differ from the host's (see above)"
fi
echo "firmware test passed: $(head -n 1 "$tmp/qemu.stdout"), $(sed -n 2p "$tmp/qemu.stdout"), as on the host"
