#!/usr/bin/env python3
"""Runs `constnet bench --json` of several commands in turn, A B C A B C ..., and prints the
medians of the headline figures and their ratios to the first command, so builds (or kernel
paths, or commits) are compared in one run on a machine whose speed drifts.

    benches/interleave.py [--rounds N] [--seconds S] [--data DIR] \
        NAME=COMMAND [NAME=COMMAND ...]

COMMAND is split like a shell command line and may start with environment assignments, e.g.
    default=target/release/constnet  native=/tmp/native/constnet  avx2='CONSTNET_SIMD=avx2 target/release/constnet'
Each run is `COMMAND bench --json --seconds S [--data DIR]`.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess

FIGURES = [
    ("train_step_b64", "training step, batch 64", 1e6, "µs"),
    ("epoch_one_thread", "one epoch, 1 thread", 1.0, "s"),
    ("epoch", "one epoch, all threads", 1.0, "s"),
    ("test_set_inference", "test set, 10,000 images", 1e3, "ms"),
    ("one_sample_inference", "one sample, weights in cache", 1e6, "µs"),
    ("one_sample_inference_cold", "one sample, weights in memory", 1e6, "µs"),
]


def run(command, seconds, data):
    words = shlex.split(command)
    env = dict(os.environ)
    while words and "=" in words[0] and not words[0].startswith("/"):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    args = words + ["bench", "--json", "--seconds", str(seconds)]
    if data:
        args += ["--data", data]
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--data")
    parser.add_argument("commands", nargs="+", metavar="NAME=COMMAND")
    args = parser.parse_args()
    commands = [c.split("=", 1) for c in args.commands]
    results = {name: [] for name, _ in commands}
    for r in range(args.rounds):
        for name, command in commands:
            results[name].append(run(command, args.seconds, args.data))
            print(f"round {r + 1}/{args.rounds}: {name} done", flush=True)

    first = commands[0][0]
    peaks = {name: statistics.median(x["fma_peak_gflops"] for x in results[name]) for name, _ in commands}
    print(f"\n{args.rounds} interleaved rounds; medians over rounds; ratios to {first} "
          "are medians of the per-round ratios")
    print("kernel paths: " + ", ".join(f"{n} {results[n][0]['simd']}" for n, _ in commands))
    print("FMA peak of one core (GFLOP/s): " + ", ".join(f"{n} {peaks[n]:.1f}" for n, _ in commands))
    header = "| figure | " + " | ".join(n for n, _ in commands) + " | " + " | ".join(
        f"{n} ÷ {first}" for n, _ in commands[1:]) + " |"
    print("\n" + header)
    print("|---" * (2 * len(commands)) + "|")
    for key, label, scale, unit in FIGURES:
        values = {n: [x[key]["median_s"] for x in results[n]] for n, _ in commands}
        cells = [f"{statistics.median(values[n]) * scale:.3g} {unit}" for n, _ in commands]
        ratios = [
            f"{statistics.median(v / f for v, f in zip(values[n], values[first])):.3f}"
            for n, _ in commands[1:]
        ]
        print(f"| {label} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
