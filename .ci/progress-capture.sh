#!/usr/bin/env bash
# A screenshot, as text, of `constnet train`'s progress bar in a terminal 60 columns wide.
# (In .ci/, not examples/: it is a tool for the closing notes, not part of the published crate.)
#
# Runs the command in a detached tmux session whose window is 60×16 (tmux is a real terminal
# emulator on a pty: the bar sees a 60-column terminal, and `capture-pane` returns the screen as
# drawn, after every cursor movement and line clear). The screen is read every 0.2 s; printed
# are the last screen that still shows the bar, then the screen after the command ended.
#
# Usage: .ci/progress-capture.sh [OUTPUT] [-- TRAIN ARGS...]
#   OUTPUT defaults to progress60.txt; train's arguments default to `--epochs 1`.
#   The binary is target/release/constnet (built with `cargo build --release`), data from
#   $MNIST_DIR as usual.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-progress60.txt}"
shift $(( $# > 0 ? 1 : 0 ))
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--epochs 1)
if ! command -v tmux >/dev/null; then
    echo "skipped: needs tmux (a terminal emulator whose screen can be read back)" >&2
    exit 0
fi
bin="$repo/target/release/constnet"
[ -x "$bin" ] || { echo "build it first: cargo build --release" >&2; exit 1; }
tmp="$(mktemp -d)"
session="constnet-capture-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# The command the pane runs: a 60-column terminal as far as stty and $COLUMNS tell, too.
printf -v cmd '%q ' "$bin" train "${args[@]}" --out "$tmp/model.safetensors"
tmux new-session -d -s "$session" -x 60 -y 16 \
    "stty cols 60 rows 16; export COLUMNS=60; cd $(printf %q "$tmp"); $cmd; echo \"[exit \$?]\"; sleep 600"
last_bar=""
while :; do
    screen="$(tmux capture-pane -p -t "$session")"
    if grep -q '\[exit [0-9]*\]' <<<"$screen"; then
        break
    fi
    # The bar's first line: "epoch N [===>   ] done/total [elapsed<eta]".
    if grep -qE '^epoch [0-9]+ \[' <<<"$screen"; then
        last_bar="$screen"
    fi
    sleep 0.2
done
{
    rule="$(printf '%*s' 60 '' | tr ' ' '-')"
    echo "\$ constnet train ${args[*]}   (a 60x16 terminal, tmux; mid-epoch)"
    echo "$rule"
    printf '%s\n' "$last_bar"
    echo "$rule"
    echo
    echo "the same terminal after the run:"
    echo "$rule"
    printf '%s\n' "$screen"
    echo "$rule"
} >"$out"
echo "wrote $out"
