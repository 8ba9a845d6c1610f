// preprocess.js: a drawing to a 28×28 MNIST input, the way the MNIST digits were made.
//
// LeCun, Cortes and Burges describe MNIST's preprocessing: the black-and-white NIST digits
// "were size normalized to fit in a 20x20 pixel box while preserving their aspect ratio. The
// resulting images contain grey levels as a result of the anti-aliasing technique used by the
// normalization algorithm. The images were centered in a 28x28 image by computing the center
// of mass of the pixels, and translating the image so as to position this point at the center
// of the 28x28 field." In steps:
//
//   1. box    the bounding box of the ink (every pixel above `threshold`);
//   2. scale  the box so its longer side is 20 pixels, the same factor on both axes, each new
//             pixel the area-weighted mean of the drawing pixels it covers (a box filter: the
//             grey levels at the edges are the anti-aliasing);
//   3. centre the centre of mass of the scaled image, in pixel indices, is moved to (14, 14)
//             of the 28×28 field by a whole-pixel translation.
//
// The test set agrees with this reading: the longest side of every digit's non-zero pixels is
// 20 (19 for three of 10,000), and their centres of mass, in pixel indices, lie within half a
// pixel of (14, 14), spread evenly: a translation by whole pixels, rounded.
//
// Plain functions over arrays: no DOM, so node tests run them as they are.

export const SIDE = 28;
export const BOX = 20;

/**
 * The 28×28 MNIST input (Uint8Array(784), 0 background, 255 ink) of a drawing, or null if
 * nothing is drawn.
 *
 * `ink` holds the drawing's intensity, 0 (background) to 255 (ink), row by row: `width ×
 * height` pixels, each `stride` values apart (4 for a canvas's RGBA ImageData, reading its red
 * channel; 1 for a plain grey image).
 */
export function mnistInput(ink, width, height, { stride = 1, threshold = 0 } = {}) {
  const box = inkBox(ink, width, height, stride, threshold);
  if (!box) return null;
  const scaled = scaleToBox(ink, width, stride, box);
  return centreByMass(scaled);
}

/** The bounding box { x0, y0, x1, y1 } (exclusive ends) of pixels above `threshold`. */
export function inkBox(ink, width, height, stride = 1, threshold = 0) {
  let x0 = width;
  let y0 = height;
  let x1 = 0;
  let y1 = 0;
  for (let y = 0; y < height; y++) {
    const row = y * width * stride;
    for (let x = 0; x < width; x++) {
      if (ink[row + x * stride] > threshold) {
        if (x < x0) x0 = x;
        if (x >= x1) x1 = x + 1;
        if (y < y0) y0 = y;
        y1 = y + 1;
      }
    }
  }
  return x1 > x0 ? { x0, y0, x1, y1 } : null;
}

/**
 * Step 2: the box scaled by BOX / (its longer side), area-averaged. Returns { data, w, h }
 * with w, h ≤ BOX: data is a Float32Array of w × h intensities 0–255. The shorter side's
 * last pixel may be partly outside the box; the part outside counts as background.
 */
export function scaleToBox(ink, width, stride, { x0, y0, x1, y1 }) {
  const bw = x1 - x0;
  const bh = y1 - y0;
  const step = Math.max(bw, bh) / BOX; // drawing pixels per MNIST pixel, on both axes
  const w = Math.min(BOX, Math.ceil(bw / step - 1e-9));
  const h = Math.min(BOX, Math.ceil(bh / step - 1e-9));
  // Separable box filter: each output column (row) is a weighted sum of the input columns
  // (rows) it overlaps, weighted by the length of the overlap.
  const cols = overlaps(x0, x1, w, step);
  const rows = overlaps(y0, y1, h, step);
  const across = new Float32Array((y1 - y0) * w); // box rows × output columns
  for (let y = y0; y < y1; y++) {
    const src = y * width * stride;
    const dst = (y - y0) * w;
    for (let u = 0; u < w; u++) {
      const { first, weights } = cols[u];
      let sum = 0;
      for (let k = 0; k < weights.length; k++) sum += weights[k] * ink[src + (first + k) * stride];
      across[dst + u] = sum;
    }
  }
  const data = new Float32Array(w * h);
  const area = step * step;
  for (let v = 0; v < h; v++) {
    const { first, weights } = rows[v];
    for (let k = 0; k < weights.length; k++) {
      const src = (first + k - y0) * w;
      for (let u = 0; u < w; u++) data[v * w + u] += weights[k] * across[src + u];
    }
    for (let u = 0; u < w; u++) data[v * w + u] /= area;
  }
  return { data, w, h };
}

/**
 * For each of `n` output pixels of `step` input pixels each, starting at `lo`: the first input
 * pixel it overlaps and the overlap with it and the next ones (input pixels end at `hi`).
 */
function overlaps(lo, hi, n, step) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const a = lo + i * step;
    const b = Math.min(hi, a + step);
    const first = Math.floor(a);
    const weights = [];
    for (let p = first; p < b; p++) weights.push(Math.min(b, p + 1) - Math.max(a, p));
    out.push({ first, weights: Float64Array.from(weights) });
  }
  return out;
}

/**
 * Step 3: the scaled image in a 28×28 field, translated by whole pixels so that its centre of
 * mass (in pixel indices) lands on (14, 14). Pixels pushed past the border are lost, as they
 * were in MNIST.
 */
export function centreByMass({ data, w, h }) {
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let v = 0; v < h; v++) {
    for (let u = 0; u < w; u++) {
      const m = data[v * w + u];
      mass += m;
      mx += m * u;
      my += m * v;
    }
  }
  const out = new Uint8Array(SIDE * SIDE);
  if (mass === 0) return out;
  const dx = Math.round(SIDE / 2 - mx / mass);
  const dy = Math.round(SIDE / 2 - my / mass);
  for (let v = 0; v < h; v++) {
    const y = v + dy;
    if (y < 0 || y >= SIDE) continue;
    for (let u = 0; u < w; u++) {
      const x = u + dx;
      if (x < 0 || x >= SIDE) continue;
      out[y * SIDE + x] = Math.min(255, Math.max(0, Math.round(data[v * w + u])));
    }
  }
  return out;
}
