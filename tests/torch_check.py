"""Loads a model file written by `constnet train --arch reference-bn` into a PyTorch module of
the same architecture and names, strictly, and runs the MNIST test set through it in evaluation
mode (run by tests/torch.rs, which writes constnet's logits).

Usage: torch_check.py MODEL.safetensors MNIST_DIR LOGITS.f32 TOLERANCE

The module has attributes fc1, bn1, fc2, bn2, fc3, bn3, fc4 (nn.Linear, nn.BatchNorm1d) and
computes fc4(relu(bn3(fc3(relu(bn2(fc2(relu(bn1(fc1(x)))))))))). The file is read with
safetensors.torch.load_file; every tensor must have the dtype and shape of the module's own
(load_state_dict would silently cast a float num_batches_tracked to int64), then
load_state_dict(state, strict=True) must take it. The test images (t10k-images-idx3-ubyte in
MNIST_DIR, raw or .gz) are scaled as constnet scales them: f32(pixel) / 255. LOGITS.f32 holds
constnet's logits, little-endian f32, one row of 10 per test image.

Prints each tensor (name, dtype, shape, and the value of scalars), torch's and constnet's
counts of test images right, and the largest logits difference. Exits 1 if the file does not
load or a logit differs from constnet's by more than TOLERANCE × max(1, |logit|) (or is NaN);
exits 2 on a usage or file error.
"""

import gzip
import os
import sys

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn


def fail(message, status=1):
    print(f"torch_check: {message}", file=sys.stderr)
    sys.exit(status)


class ReferenceBn(nn.Module):
    """784→256→128→64→10 with BatchNorm1d after each hidden Linear, before its ReLU."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 256), nn.BatchNorm1d(256)
        self.fc2, self.bn2 = nn.Linear(256, 128), nn.BatchNorm1d(128)
        self.fc3, self.bn3 = nn.Linear(128, 64), nn.BatchNorm1d(64)
        self.fc4 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.fc1(x)))
        x = F.relu(self.bn2(self.fc2(x)))
        x = F.relu(self.bn3(self.fc3(x)))
        return self.fc4(x)


def read_idx(directory, name, magic, dims):
    """The array in IDX file `name` (or its .gz, or the dotted spelling) of MNIST_DIR."""
    dotted = name.replace("-idx", ".idx", 1)
    candidates = [name, dotted, name + ".gz", dotted + ".gz"]
    paths = [os.path.join(directory, c) for c in candidates]
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        fail(f"{directory}: none of {', '.join(candidates)}", 2)
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    header = 4 + 4 * dims
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        fail(f"{path}: not an IDX file with magic {magic:#010x}", 2)
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    if len(data) != header + int(np.prod(shape)):
        fail(f"{path}: {len(data) - header} bytes of data for dims {shape}", 2)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_strictly(path):
    """The module with the file's tensors, after checking their dtypes and shapes."""
    model = ReferenceBn()
    try:
        state = load_file(path)
    except Exception as e:  # safetensors' own error says what is wrong
        fail(f"{path}: safetensors cannot read it: {e}", 2)
    own = model.state_dict()
    wrong = [
        f"{k}: {v.dtype} {list(v.shape)} in the file, {own[k].dtype} {list(own[k].shape)} in the module"
        for k, v in state.items()
        if k in own and (v.dtype != own[k].dtype or v.shape != own[k].shape)
    ]
    if wrong:
        fail(f"{path}: " + "; ".join(wrong))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail(f"{path}: load_state_dict(strict=True) refuses it: {e}")
    print(
        f"torch {torch.__version__}, safetensors {safetensors.__version__}: "
        f"load_state_dict(strict=True) took all {len(state)} tensors"
    )
    for k, v in model.state_dict().items():
        if not torch.equal(v, state[k]):
            fail(f"{k} changed when loaded")
        value = f" = {v.item()}" if v.dim() == 0 else ""
        print(f"  {k} {v.dtype} {list(v.shape)}{value}")
    return model.eval()


def main():
    if len(sys.argv) != 5:
        fail(__doc__.strip().splitlines()[4], 2)
    path, directory, logits_file, tolerance = sys.argv[1:4] + [float(sys.argv[4])]
    model = load_strictly(path)
    images = read_idx(directory, "t10k-images-idx3-ubyte", 0x803, 3)
    labels = read_idx(directory, "t10k-labels-idx1-ubyte", 0x801, 1).astype(np.int64)
    count = len(labels)
    if images.shape != (count, 28, 28):
        fail(f"{directory}: {images.shape[0]} test images of {images.shape[1:]}, {count} labels", 2)
    # numpy's f32 division, correctly rounded as constnet's: the same inputs bit for bit (a
    # product by 1/255 differs on 126 of the 256 values).
    x = torch.from_numpy(images.reshape(count, 784).astype(np.float32) / np.float32(255))
    want = np.fromfile(logits_file, dtype="<f4")
    if want.size != count * 10:
        fail(f"{logits_file}: {want.size} logits, expected {count} × 10", 2)
    want = want.reshape(count, 10)

    with torch.no_grad():
        got = model(x).numpy()
    right = int(np.sum(got.argmax(axis=1) == labels))
    theirs = int(np.sum(want.argmax(axis=1) == labels))
    same = int(np.sum(got.argmax(axis=1) == want.argmax(axis=1)))
    print(
        f"torch: {right}/{count} test images right; constnet's logits: {theirs}/{count}; "
        f"same prediction on {same}/{count}"
    )
    diff = np.abs(got - want)
    scaled = diff / np.maximum(1.0, np.abs(want))
    row, col = np.unravel_index(int(np.argmax(scaled)), diff.shape)
    print(
        f"max |logits difference| {float(np.max(diff)):.3g}, max |difference| / max(1, |logit|) "
        f"{float(np.max(scaled)):.3g} (image {row}, class {col}: torch {got[row, col]:.7g}, "
        f"constnet {want[row, col]:.7g}); logits within ±{float(np.max(np.abs(want))):.3g}"
    )
    if not float(np.max(scaled)) <= tolerance:
        fail(f"logits differ by more than {tolerance} × max(1, |logit|)")


if __name__ == "__main__":
    main()
