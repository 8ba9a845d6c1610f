"""Runs a model written by `constnet export --onnx` in onnxruntime and compares its logits with
constnet's (run by tests/onnx.rs, which writes the inputs and constnet's logits).

Usage: onnx_check.py MODEL.onnx DATA.f32 COUNT TOLERANCE [EXACT.f64]

DATA.f32 holds little-endian f32: COUNT input rows of the model's input width, then COUNT rows
of constnet's logits; EXACT.f64 the logits computed in f64 (little-endian). Checks the graph's
input and output (names, symbolic batch, widths), runs all COUNT rows in one batch and the
first row alone, prints the largest absolute logits difference (and each side's distance from
the exact logits), and exits 1 if a difference exceeds TOLERANCE × max(1, |logit|) (or is
NaN): absolute for logits within ±1, relative beyond, as f32 rounding grows with magnitude.
Exits 2 on a usage or file error.
"""

import sys

import numpy as np
import onnxruntime as ort


def fail(message, status=1):
    print(f"onnx_check: {message}", file=sys.stderr)
    sys.exit(status)


def main():
    if len(sys.argv) not in (5, 6):
        fail(__doc__.strip().splitlines()[2], 2)
    model, data, count, tolerance = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    exact_file = sys.argv[5] if len(sys.argv) == 6 else None
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    if inp.name != "input" or inp.type != "tensor(float)" or len(inp.shape) != 2 or inp.shape[0] != "N":
        fail(f"{model}: unexpected input {inp.name} {inp.type} {inp.shape}")
    if out.name != "logits" or out.type != "tensor(float)" or len(out.shape) != 2 or out.shape[0] != "N":
        fail(f"{model}: unexpected output {out.name} {out.type} {out.shape}")
    features, classes = inp.shape[1], out.shape[1]

    values = np.fromfile(data, dtype="<f4")
    if values.size != count * (features + classes):
        fail(f"{data}: {values.size} floats, expected {count} × ({features} + {classes})", 2)
    x = values[: count * features].reshape(count, features)
    want = values[count * features :].reshape(count, classes)

    got = session.run(["logits"], {"input": x})[0]
    one = session.run(["logits"], {"input": x[:1]})[0]
    if got.shape != want.shape or one.shape != (1, classes):
        fail(f"logits of shape {got.shape} and {one.shape}, expected {want.shape} and (1, {classes})")
    diff = np.abs(got - want)
    worst = float(np.max(diff))
    scaled = diff / np.maximum(1.0, np.abs(want))
    row, col = np.unravel_index(int(np.argmax(scaled)), diff.shape)
    single = float(np.max(np.abs(one - want[:1]) / np.maximum(1.0, np.abs(want[:1]))))
    agree = int(np.sum(got.argmax(axis=1) == want.argmax(axis=1)))
    print(
        f"onnxruntime {ort.__version__}: {count} rows, max |logits difference| {worst:.3g}, "
        f"max |difference| / max(1, |logit|) {float(np.max(scaled)):.3g} (row {row}, class {col}: "
        f"onnxruntime {got[row, col]:.7g}, constnet {want[row, col]:.7g}); batch of 1: "
        f"{single:.3g}; same prediction on {agree}/{count}"
    )
    if exact_file is not None:
        exact = np.fromfile(exact_file, dtype="<f8")
        if exact.size != count * classes:
            fail(f"{exact_file}: {exact.size} values, expected {count} × {classes}", 2)
        exact = exact.reshape(count, classes)
        print(
            f"from the exact (f64) logits: constnet {float(np.max(np.abs(want - exact))):.3g}, "
            f"onnxruntime {float(np.max(np.abs(got - exact))):.3g} (max |difference|)"
        )
    if not (float(np.max(scaled)) <= tolerance and single <= tolerance):
        fail(f"logits differ by more than {tolerance} × max(1, |logit|)")

if __name__ == "__main__":
    main()
