#!/usr/bin/env python3
"""Print criterion's medians as a markdown table of GFLOP/s and fractions of the FMA peak.

Usage: python3 benches/table.py [target/criterion]
Reads every <bench>/new/{benchmark,estimates}.json that criterion wrote. For each group it
prints the median of each function (simd, reference, matrixmultiply, ...) in GFLOP/s (the
group's Throughput::Elements counts flops), the SIMD kernel's share of the `fma_peak` group's
median, the ratio to each other function, and the noise as the median absolute deviation.
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
groups = {}
for bench in sorted(root.glob("**/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    thr = (meta.get("throughput") or {}).get("Elements")
    median_ns = est["median"]["point_estimate"]
    mad_ns = est["median_abs_dev"]["point_estimate"]
    groups.setdefault(meta["group_id"], {})[meta["function_id"]] = (median_ns, mad_ns, thr)

peak = None
if "fma_peak" in groups and "simd" in groups["fma_peak"]:
    ns, _, flops = groups["fma_peak"]["simd"]
    peak = flops / ns

def gflops(entry):
    ns, _, flops = entry
    return flops / ns if flops else float("nan")

others = sorted({f for g in groups.values() for f in g} - {"simd"})
print(f"FMA peak (one core): {peak:.1f} GFLOP/s\n" if peak else "FMA peak: not measured\n")
head = "| group | simd GFLOP/s | % of peak | noise (MAD) |" + "".join(f" {o} GFLOP/s | simd ÷ {o} |" for o in others)
print(head)
print("|" + "---|" * (head.count("|") - 1))
for name in sorted(groups):
    if name == "fma_peak" or "simd" not in groups[name]:
        continue
    g = groups[name]
    s = gflops(g["simd"])
    pct = f"{100 * s / peak:.0f} %" if peak else "-"
    noise = f"±{100 * g['simd'][1] / g['simd'][0]:.1f} %"
    row = f"| {name} | {s:.1f} | {pct} | {noise} |"
    for o in others:
        if o in g:
            row += f" {gflops(g[o]):.1f} | {s / gflops(g[o]):.2f}× |"
        else:
            row += " - | - |"
    print(row)
