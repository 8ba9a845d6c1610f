// The WebAssembly module and the page's preprocessing in node: both variants against the
// native build on the 10,000 MNIST test images, with the f32 model and with the int8 one; bad
// model blobs of both kinds; and the preprocessing against MNIST's own digits. Run by
// run-tests.sh after build.sh; by hand:
//
//   MNIST_DIR=data/mnist node examples/web/test/node.mjs
//
// f32: native and WebAssembly builds round differently: the native kernels use FMA (one
// rounding per multiply-add) and another summation order, WebAssembly has no FMA. So the two
// may pick different digits only where the native top two logits are within TOLERANCE of each
// other; such images are counted and printed, any other disagreement fails.
//
// int8: integer arithmetic, the same on every kernel path, so the digits and the logits (the
// i32 logits times the logit scale, one f32 multiplication) must be exactly the native ones.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import zlib from "node:zlib";
import { Constnet, KIND_F32, KIND_I8, simdSupported } from "../constnet.js";
import { mnistInput } from "../preprocess.js";
import { int8ModelPath, mnistTest, modelPath, nativeReference, topTwoGap, wasmPath } from "./common.mjs";

/** Largest gap between the native top two logits at which the digit may differ. */
const TOLERANCE = 1e-3;
const VARIANTS = ["simd128", "scalar"];

const mnist = mnistTest();
const blob = readFileSync(modelPath());
const int8Blob = readFileSync(int8ModelPath());
const native = nativeReference(modelPath(), mnist.pixels);
const nativeInt8 = nativeReference(int8ModelPath(), mnist.pixels);
for (const [kind, n] of [["f32", native], ["int8", nativeInt8]]) {
  console.log(`  native ${kind} reference: kernels ${n.kernels}, ${n.microseconds} µs per image (forward, with printing the logits)`);
}
/** "variant kind" → µs per classify() call, printed by the last test. */
const perCall = {};

async function load(variant, model = blob) {
  const net = await Constnet.instantiate(readFileSync(wasmPath(variant)));
  net.loadModel(model);
  return net;
}

/** The best of three timings of classify() on the current input, 100 ms each. */
const timeCalls = (net) => Math.min(...[1, 2, 3].map(() => net.timeClassify(100).microseconds));

for (const variant of VARIANTS) {
  test(`${variant}: the same digits as the native build (${native.kernels}) on 10,000 images`, async () => {
    const net = await load(variant);
    assert.equal(net.variant, variant, "the module reports the variant it was built as");
    let equal = 0;
    let withinTolerance = 0;
    let correct = 0;
    let maxLogitDiff = 0;
    const others = [];
    const start = performance.now();
    for (let i = 0; i < mnist.count; i++) {
      const digit = net.classify(mnist.image(i));
      const want = native.rows[i];
      for (let c = 0; c < 10; c++) {
        maxLogitDiff = Math.max(maxLogitDiff, Math.abs(net.logits[c] - want.logits[c]));
      }
      if (digit === mnist.labels[i]) correct += 1;
      if (digit === want.digit) equal += 1;
      else if (topTwoGap(want.logits) <= TOLERANCE) {
        withinTolerance += 1;
        console.log(`  image ${i}: ${variant} says ${digit}, native ${want.digit}, native top-two gap ${topTwoGap(want.logits)}`);
      } else others.push(i);
    }
    const perImage = (1000 * (performance.now() - start)) / mnist.count;
    const timed = timeCalls(net);
    perCall[`${variant} f32`] = timed;
    console.log(
      `  ${variant}: ${equal} equal, ${withinTolerance} differ within tolerance ${TOLERANCE}, ${others.length} other; ` +
        `max |logit difference| ${maxLogitDiff.toExponential(2)}; accuracy ${(correct / 100).toFixed(2)}%`,
    );
    console.log(
      `  ${variant}: ${timed.toFixed(1)} µs per classify() call (best of 3 × 100 ms on one image); ` +
        `${perImage.toFixed(1)} µs per image over the test set, copying the input included`,
    );
    assert.deepEqual(
      others.map((i) => `image ${i}: ${variant} ${net.classify(mnist.image(i))}, native ${native.rows[i].digit}`),
      [],
      `digits differ where the native top-two gap exceeds ${TOLERANCE}`,
    );
    assert.ok(maxLogitDiff < 1e-3, `logits differ by ${maxLogitDiff}`);
  });

  test(`${variant}, int8: exactly the native build's (${nativeInt8.kernels}) digits and logits on 10,000 images`, async () => {
    const net = await load(variant, int8Blob);
    assert.equal(net.modelKind, KIND_I8, "the int8 blob is recognised by its magic bytes");
    let sameDigit = 0;
    let sameLogits = 0;
    let correct = 0;
    const differ = [];
    const start = performance.now();
    for (let i = 0; i < mnist.count; i++) {
      const digit = net.classify(mnist.image(i));
      const want = nativeInt8.rows[i];
      if (digit === mnist.labels[i]) correct += 1;
      if (digit === want.digit) sameDigit += 1;
      if (net.logits.every((z, c) => z === want.logits[c])) sameLogits += 1;
      else if (differ.length < 10) differ.push(`image ${i}: ${variant} ${digit} [${net.logits.join(" ")}], native ${want.digit} [${want.logits.join(" ")}]`);
    }
    const perImage = (1000 * (performance.now() - start)) / mnist.count;
    const timed = timeCalls(net);
    perCall[`${variant} int8`] = timed;
    console.log(
      `  ${variant} int8: ${sameDigit} of ${mnist.count} digits equal to native, ${sameLogits} with bit-identical logits; ` +
        `accuracy ${(correct / 100).toFixed(2)}%`,
    );
    console.log(
      `  ${variant} int8: ${timed.toFixed(1)} µs per classify() call (best of 3 × 100 ms on one image); ` +
        `${perImage.toFixed(1)} µs per image over the test set, copying the input included`,
    );
    assert.deepEqual(differ, [], "int8 logits differ from the native ones");
    assert.equal(sameDigit, mnist.count, "int8 digits differ from the native ones");
    assert.equal(sameLogits, mnist.count);
  });
}

test("the SIMD probe agrees with the simd128 module, and each module reports its build", async () => {
  assert.equal(WebAssembly.validate(readFileSync(wasmPath("simd128"))), simdSupported());
  assert.ok(WebAssembly.validate(readFileSync(wasmPath("scalar"))));
  for (const variant of VARIANTS) {
    const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath(variant)), {});
    assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasmPath(variant)))), [], "no imports");
    assert.equal(instance.exports.features() & 1, variant === "simd128" ? 1 : 0);
  }
});

test("bad model blobs are refused with their error code and leave no model loaded", async () => {
  const net = await load("scalar");
  const refuse = (bytes, code, kind = KIND_F32) => {
    assert.throws(() => net.loadModel(bytes, kind), (e) => e.name === "ModelError" && e.code === code);
    assert.equal(net.modelKind, -1);
    assert.throws(() => net.classify(mnist.image(0)), /no model loaded/);
  };
  const corrupt = Uint8Array.from(blob);
  corrupt[corrupt.length - 5] ^= 0x40; // a bit of fc4's bias
  const version = Uint8Array.from(blob);
  version[8] = 2;
  refuse(blob, 1, 2); // unknown kind
  refuse(new Uint8Array(net.modelCapacity + 1), 2);
  refuse(blob.subarray(0, 40), 3);
  refuse(new Uint8Array(blob.length), 4);
  refuse(version, 5);
  const longer = new Uint8Array(blob.length + 1);
  longer.set(blob);
  refuse(longer, 7);
  refuse(corrupt, 10);
  // The exports themselves, below the loader's checks.
  assert.equal(net.exports.load_model(KIND_F32, net.modelCapacity + 1), 2);
  assert.equal(net.exports.classify(), -1);
  net.loadModel(blob);
  assert.equal(net.modelKind, KIND_F32);
  assert.equal(net.classify(mnist.image(0)), native.rows[0].digit);
});

// The int8 blob's layout (constnet::quant::raw): header of 64 bytes (CRC-32 of the rest at
// 24), then one 64-byte table entry per layer (inputs, outputs, input zero point, input scale,
// output kind, output zero point, output scale, 0, six section offsets); layer 0's weights
// start at byte 320.
test("bad int8 blobs are refused with their error code and leave no model loaded", async () => {
  const net = await load("scalar", int8Blob);
  const refuse = (bytes, code, kind = KIND_I8) => {
    assert.throws(() => net.loadModel(bytes, kind), (e) => e.name === "ModelError" && e.code === code, `code ${code}`);
    assert.equal(net.modelKind, -1);
    assert.throws(() => net.classify(mnist.image(0)), /no model loaded/);
  };
  const edited = (edit, fixChecksum = false) => {
    const b = Uint8Array.from(int8Blob);
    edit(new DataView(b.buffer));
    if (fixChecksum) new DataView(b.buffer).setUint32(24, zlib.crc32(b.subarray(64)), true);
    return b;
  };
  refuse(int8Blob, 1, 2); // unknown kind
  refuse(blob, 4); // the f32 blob as int8
  refuse(int8Blob, 4, KIND_F32); // the int8 blob as f32
  refuse(int8Blob.subarray(0, 100), 3);
  refuse(edited((v) => v.setUint32(8, 2, true)), 5); // version
  refuse(edited((v) => v.setUint32(12, 3, true)), 6); // layer count
  const longer = new Uint8Array(int8Blob.length + 64);
  longer.set(int8Blob);
  refuse(longer, 7);
  refuse(edited((v) => v.setUint8(int8Blob.length - 200, v.getUint8(int8Blob.length - 200) ^ 1)), 10);
  if (typeof zlib.crc32 === "function") {
    // Past the checksum, with the checksum made right again: the view's own checks.
    refuse(edited((v) => v.setUint32(64, 785, true), true), 8); // layer 0's inputs
    refuse(edited((v) => v.setUint32(64 + 36, v.getUint32(64 + 36, true) + 64, true), true), 9); // an offset
    refuse(edited((v) => v.setInt8(320, -128), true), 13); // a weight of −128
    refuse(edited((v) => v.setFloat32(64 + 12, 1 / 256, true), true), 14); // the input scale
  } else {
    console.log("  (codes 8, 9, 13, 14 not checked: this node has no zlib.crc32 to fix the checksum)");
  }
  // Once loaded, the model does not depend on the upload buffer: overwrite it all.
  net.loadModel(int8Blob);
  new Uint8Array(net.memory.buffer, net.modelPtr, net.modelCapacity).fill(0xa5);
  for (const i of [0, 1, 2]) {
    assert.equal(net.classify(mnist.image(i)), nativeInt8.rows[i].digit);
    assert.deepEqual(Array.from(net.logits), Array.from(nativeInt8.rows[i].logits));
  }
  // Switching kinds back and forth.
  net.loadModel(blob);
  assert.equal(net.modelKindName, "f32");
  assert.equal(net.classify(mnist.image(0)), native.rows[0].digit);
  net.loadModel(int8Blob);
  assert.equal(net.modelKindName, "int8");
  assert.equal(net.classify(mnist.image(3)), nativeInt8.rows[3].digit);
});

// MNIST digits drawn 10 times larger (each pixel a 10×10 block) on a 320×320 canvas, off
// centre: the preprocessing must give back the very same 28×28 image. Every test digit's
// non-zero pixels span 20 pixels (three span 19: those are scaled to 20, and differ), and its
// centre of mass is within half a pixel of (14, 14), so the whole-pixel translation restores
// it unless the centre lies exactly half-way.
test("preprocessing gives back MNIST digits drawn ten times larger", () => {
  const W = 320;
  let same = 0;
  let maxDiff = 0;
  const canvas = new Uint8Array(W * W);
  for (let i = 0; i < mnist.count; i++) {
    canvas.fill(0);
    const image = mnist.image(i);
    const ox = 7 + (i % 13);
    const oy = 31 - (i % 17);
    for (let p = 0; p < 784; p++) {
      if (image[p] === 0) continue;
      const at = (oy + 10 * Math.floor(p / 28)) * W + ox + 10 * (p % 28);
      for (let r = 0; r < 10; r++) canvas.fill(image[p], at + r * W, at + r * W + 10);
    }
    const input = mnistInput(canvas, W, W);
    let diff = 0;
    for (let p = 0; p < 784; p++) diff = Math.max(diff, Math.abs(input[p] - image[p]));
    if (diff === 0) same += 1;
    maxDiff = Math.max(maxDiff, diff);
  }
  console.log(`  ${same} of ${mnist.count} identical to the original (largest pixel difference elsewhere: ${maxDiff})`);
  assert.ok(same >= 0.99 * mnist.count, `${same} identical`);
});

// The same digits enlarged by a factor that is not a whole number (×7.3, each pixel a square
// of 7.3 × 7.3 canvas pixels, anti-aliased at the edges as a canvas draws them): the
// preprocessing must bring them back close enough that the network reads the digit the native
// build reads on the original nearly always.
test("preprocessing keeps the network's answer on digits enlarged 7.3 times", async () => {
  const net = await load(simdSupported() ? "simd128" : "scalar");
  const scale = 7.3;
  const W = 240;
  const canvas = new Float32Array(W * W);
  // Canvas pixel x covers [x, x + 1) / scale of the image: at most two image pixels.
  const cover = Array.from({ length: W }, (_, x) => {
    const a = x / scale;
    const b = (x + 1) / scale;
    const p = Math.floor(a);
    const inP = Math.min(b, p + 1) - a;
    return [p, (inP * scale), p + 1, ((b - a - inP) * scale)];
  });
  const pixel = (image, x, y) => (x > 27 || y > 27 ? 0 : image[28 * y + x]);
  let agree = 0;
  const n = 2000;
  for (let i = 0; i < n; i++) {
    const image = mnist.image(i);
    for (let y = 0; y < W; y++) {
      const [py0, wy0, py1, wy1] = cover[y];
      for (let x = 0; x < W; x++) {
        const [px0, wx0, px1, wx1] = cover[x];
        canvas[W * y + x] =
          wy0 * (wx0 * pixel(image, px0, py0) + wx1 * pixel(image, px1, py0)) +
          wy1 * (wx0 * pixel(image, px0, py1) + wx1 * pixel(image, px1, py1));
      }
    }
    if (net.classify(mnistInput(canvas, W, W)) === native.rows[i].digit) agree += 1;
  }
  console.log(`  ${agree} of ${n}: the same digit as the original image`);
  assert.ok(agree >= 0.98 * n, `${agree} of ${n}`);
});

test("per-call times (node, one classify() on one image)", () => {
  for (const variant of VARIANTS) {
    const f32 = perCall[`${variant} f32`];
    const int8 = perCall[`${variant} int8`];
    if (f32 && int8) console.log(`  ${variant}: f32 ${f32.toFixed(1)} µs, int8 ${int8.toFixed(1)} µs (int8/f32 ${(int8 / f32).toFixed(2)})`);
  }
});
