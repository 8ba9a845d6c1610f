// constnet.js: the loader of constnet's WebAssembly module (examples/web/wasm), by hand.
//
// The module has no imports and no allocator. It exports plain functions and a few static
// buffers; this file wraps them in one small class. It runs unchanged in browsers and in node
// (it touches nothing but WebAssembly and typed arrays).
//
//   const net = await Constnet.instantiate(wasmBytes);
//   net.loadModel(blobBytes);                  // f32 or int8 blob; throws ModelError if bad
//   const digit = net.classify(pixels);        // pixels: 784 u8, white digit on black
//   net.probabilities                          // Float32Array(10) of the last call
//
// Two builds of the module exist: simd128 (WebAssembly 128-bit SIMD) and scalar. Pick one with
// `simdSupported()` before fetching it.

/** Model kinds `loadModel` takes; the module refuses the others (code 1). */
export const KIND_F32 = 0; // the f32 blob of `constnet export --raw`
export const KIND_I8 = 1; // the int8 blob of `constnet quantize --raw`

/** The name of each kind, as the page shows it. */
export const KIND_NAMES = { [KIND_F32]: "f32", [KIND_I8]: "int8" };

// The first bytes of an int8 blob (constnet::quant::raw::MAGIC).
const INT8_MAGIC = [0x43, 0x4e, 0x45, 0x54, 0x51, 0x38, 0x00, 0x00]; // "CNETQ8\0\0"

/** The kind of a blob by its magic bytes: KIND_I8 for an int8 blob, else KIND_F32. */
export function kindOf(bytes) {
  return INT8_MAGIC.every((b, i) => bytes[i] === b) ? KIND_I8 : KIND_F32;
}

/** The interface version these wrappers expect from the module's `abi_version()`. */
export const ABI_VERSION = 1;

/** What each status code of `load_model` means (mirrors ERR_* in wasm/src/lib.rs). */
export const LOAD_ERRORS = {
  1: "unsupported model kind",
  2: "the blob is larger than the module's model buffer",
  3: "truncated: shorter than its header and tensor table",
  4: "not a constnet parameter blob (bad magic bytes)",
  5: "unsupported blob version",
  6: "wrong number of tensors (f32) or layers (int8) for MnistMlp",
  7: "the blob's length differs from its header",
  8: "a tensor's or layer's shape is not MnistMlp's",
  9: "a tensor offset is misaligned, overlapping or out of bounds",
  10: "checksum mismatch: the blob is corrupted",
  11: "the blob could not be read",
  12: "a weight is NaN or infinite",
  13: "an int8 value is out of range (weight, bias, requantization, zero point or scale)",
  14: "the int8 layers do not fit together (input, zero points or output kinds)",
};

/** A model blob the module refused; `code` is the module's status code. */
export class ModelError extends Error {
  constructor(code) {
    super(`model rejected (code ${code}): ${LOAD_ERRORS[code] ?? "unknown error"}`);
    this.name = "ModelError";
    this.code = code;
  }
}

// The smallest module that uses a SIMD instruction: a function returning
// i8x16.splat(i32.const 0). WebAssembly.validate accepts it only where simd128 is supported.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x08, 0x01, 0x06, 0x00, // code section: one body of 6 bytes, no locals
  0x41, 0x00, 0xfd, 0x0f, 0x0b, // i32.const 0; i8x16.splat; end
]);

/** Whether this engine runs WebAssembly 128-bit SIMD. */
export function simdSupported() {
  return WebAssembly.validate(SIMD_PROBE);
}

/** The build to load here: "simd128" if the engine supports it, else "scalar". */
export function bestVariant() {
  return simdSupported() ? "simd128" : "scalar";
}

export const PIXELS = 784;
export const CLASSES = 10;

export class Constnet {
  /** Compiles and instantiates the module from its bytes (ArrayBuffer or typed array). */
  static async instantiate(bytes) {
    const { instance } = await WebAssembly.instantiate(bytes, {});
    return new Constnet(instance);
  }

  constructor(instance) {
    const e = instance.exports;
    if (e.abi_version() !== ABI_VERSION) {
      throw new Error(`constnet module ABI ${e.abi_version()}, this loader speaks ${ABI_VERSION}`);
    }
    this.exports = e;
    this.memory = e.memory;
    // Addresses of the module's static buffers; they never move.
    this.modelPtr = e.model_buffer();
    this.modelCapacity = e.model_capacity();
    this.inputPtr = e.input_buffer();
    this.logitsPtr = e.logits();
    this.probabilitiesPtr = e.probabilities();
    this.#views();
  }

  /** "simd128" or "scalar": what this module was compiled for. */
  get variant() {
    return this.exports.features() & 1 ? "simd128" : "scalar";
  }

  // Typed arrays over the module's buffers. The module never grows its memory (it has no
  // allocator), but rebuild them anyway if the buffer was ever replaced.
  #views() {
    const buf = this.memory.buffer;
    this.buffer = buf;
    /** The 784 u8 pixels `classify()` reads: write an image here, then call it. */
    this.input = new Uint8Array(buf, this.inputPtr, PIXELS);
    /** The last call's logits and softmax probabilities (live views: copy to keep). */
    this.logits = new Float32Array(buf, this.logitsPtr, CLASSES);
    this.probabilities = new Float32Array(buf, this.probabilitiesPtr, CLASSES);
  }

  #fresh() {
    if (this.memory.buffer !== this.buffer) this.#views();
  }

  /**
   * Loads a model blob: `constnet export --raw` (KIND_F32) or `constnet quantize --raw`
   * (KIND_I8), told apart by its magic bytes unless `kind` is given; throws ModelError if
   * refused. The blob is copied: the caller's bytes may change afterwards.
   */
  loadModel(blob, kind) {
    this.#fresh();
    const bytes = blob instanceof Uint8Array ? blob : new Uint8Array(blob);
    kind ??= kindOf(bytes);
    if (bytes.length > this.modelCapacity) throw new ModelError(2);
    new Uint8Array(this.memory.buffer, this.modelPtr, bytes.length).set(bytes);
    const status = this.exports.load_model(kind, bytes.length);
    if (status !== 0) throw new ModelError(status);
  }

  /** The loaded model's kind (KIND_F32 or KIND_I8), or -1 if none is loaded. */
  get modelKind() {
    return this.exports.model_kind();
  }

  /** "f32" or "int8", or null if no model is loaded. */
  get modelKindName() {
    return KIND_NAMES[this.modelKind] ?? null;
  }

  /**
   * Classifies 784 u8 pixels (row by row, 0 background, 255 ink), or the image already in
   * `this.input` when called without one. Returns the digit; the logits and probabilities are
   * then in `this.logits` and `this.probabilities`.
   */
  classify(pixels) {
    this.#fresh();
    if (pixels !== undefined) this.input.set(pixels);
    const digit = this.exports.classify();
    if (digit < 0) throw new Error("classify: no model loaded");
    return digit;
  }

  /** The k most probable digits of the last call, as [{ digit, probability }], best first. */
  top(k = 3) {
    this.#fresh();
    return Array.from(this.probabilities, (probability, digit) => ({ digit, probability }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, k);
  }

  /**
   * Mean time of one classify() call in microseconds, over repeated calls on the current input
   * for at least `minMs` milliseconds (browsers round performance.now(), to 100 µs in some:
   * one call is far below that).
   */
  timeClassify(minMs = 20, batch = 10) {
    const classify = this.exports.classify;
    let calls = 0;
    const start = performance.now();
    let elapsed = 0;
    do {
      for (let i = 0; i < batch; i++) classify();
      calls += batch;
      elapsed = performance.now() - start;
    } while (elapsed < minMs);
    return { microseconds: (1000 * elapsed) / calls, calls };
  }
}
