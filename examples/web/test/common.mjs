// Shared by the web tests: paths, the MNIST test set, the native reference's output.

import { existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = resolve(WEB, "../..");
export const PKG = join(WEB, "pkg");
export const OUT = join(ROOT, "target", "web-test");

/** $MNIST_DIR, else ./data/mnist (the constnet command's default). */
export function mnistDir() {
  return process.env.MNIST_DIR ? resolve(process.env.MNIST_DIR) : join(ROOT, "data", "mnist");
}

// The spellings `constnet` accepts: raw or .gz, "-idx" or ".idx".
function readIdx(dir, name) {
  for (const file of [name, name.replace("-idx", ".idx")]) {
    const path = join(dir, file);
    if (existsSync(path)) return readFileSync(path);
    if (existsSync(`${path}.gz`)) return gunzipSync(readFileSync(`${path}.gz`));
  }
  throw new Error(`${join(dir, name)} not found (raw or .gz): set MNIST_DIR to the folder of the MNIST files`);
}

/** The 10,000 test images ({ count, pixels: Uint8Array(count·784), image(i) }) and labels. */
export function mnistTest(dir = mnistDir()) {
  const images = readIdx(dir, "t10k-images-idx3-ubyte");
  const labels = readIdx(dir, "t10k-labels-idx1-ubyte");
  if (images.readUInt32BE(0) !== 0x803 || labels.readUInt32BE(0) !== 0x801) {
    throw new Error(`${dir}: not MNIST IDX files (bad magic)`);
  }
  const count = images.readUInt32BE(4);
  if (images.readUInt32BE(8) !== 28 || images.readUInt32BE(12) !== 28 || labels.readUInt32BE(4) !== count) {
    throw new Error(`${dir}: unexpected IDX dimensions`);
  }
  const pixels = new Uint8Array(images.buffer, images.byteOffset + 16, count * 784);
  return {
    count,
    pixels,
    labels: new Uint8Array(labels.buffer, labels.byteOffset + 8, count),
    image: (i) => pixels.subarray(784 * i, 784 * (i + 1)),
  };
}

/**
 * The native build's digit and logits for each image: runs examples/web/native (built by
 * run-tests.sh; $CONSTNET_WEB_NATIVE overrides its path) on the raw pixels, with an f32 or an
 * int8 blob.
 */
export function nativeReference(modelPath, pixels) {
  const bin = process.env.CONSTNET_WEB_NATIVE ?? join(ROOT, "target/web/native/release/constnet-web-native");
  const run = spawnSync(bin, [modelPath], { input: pixels, maxBuffer: 64 << 20, encoding: "utf8" });
  if (run.error || run.status !== 0) {
    throw new Error(`${bin} failed: ${run.error ?? run.stderr}`);
  }
  const rows = run.stdout.trim().split("\n").map((line) => {
    const [digit, ...logits] = line.split(" ").map(Number);
    return { digit, logits: Float32Array.from(logits) };
  });
  // stderr: "constnet-web-native: kernels avx2+fma, 12.3 µs per image (…)", or
  // "kernels int8 avx512vnni, …"
  const [, kernels, us] = run.stderr.match(/kernels ([^,]+), ([\d.]+) µs per image/) ?? [];
  return { rows, kernels, microseconds: Number(us) };
}

/** The difference between the largest and second-largest of the logits. */
export function topTwoGap(logits) {
  let a = -Infinity;
  let b = -Infinity;
  for (const z of logits) {
    if (z > a) [a, b] = [z, a];
    else if (z > b) b = z;
  }
  return a - b;
}

export const wasmPath = (variant) => join(PKG, `constnet-${variant}.wasm`);
export const modelPath = () => process.env.CONSTNET_WEB_MODEL ?? join(PKG, "model.cnet");
export const int8ModelPath = () => process.env.CONSTNET_WEB_INT8_MODEL ?? join(PKG, "model.int8.cnet");
