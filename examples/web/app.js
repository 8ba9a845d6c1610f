// app.js: the draw-a-digit page. Pointer events draw white strokes on a black pad; after each
// animation frame with new ink the drawing goes through MNIST's preprocessing (preprocess.js)
// into the WebAssembly module (constnet.js), and the top three digits are shown.
//
// ?variant=scalar or ?variant=simd128 picks the module; otherwise simd128 runs wherever
// WebAssembly.validate accepts a SIMD instruction. ?model=int8 loads the int8 network
// (pkg/model.int8.cnet) instead of the f32 one (pkg/model.cnet, also ?model=f32).
//
// For tests: <body data-state> is "loading", "ready" or "error"; #prediction's data-digit, the
// three #top3 items' data-digit and data-p and #timing's data-us carry the displayed values as
// numbers; <body data-updates> counts classified drawings and <body data-timings> timing runs.

import { Constnet, KIND_F32, KIND_I8, simdSupported } from "./constnet.js";
import { mnistInput, SIDE } from "./preprocess.js";

// Pen width in CSS pixels on the 280-pixel pad: a digit drawn 200 pixels tall comes out with
// strokes about two MNIST pixels wide, as MNIST's are.
const PEN = 20;
// Minimum time the repeated classify() calls of one timing run take, in milliseconds.
const TIMING_MS = 30;

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const input28 = $("input28");
const body = document.body;

// --- Which module and model --------------------------------------------------------------

const params = new URLSearchParams(location.search);
const simd = simdSupported();
const asked = params.get("variant");
let variant = simd ? "simd128" : "scalar";
let why = simd ? "this browser runs WebAssembly SIMD" : "no WebAssembly SIMD in this browser";
if (asked === "scalar" || asked === "simd128") {
  variant = asked;
  why = "chosen with ?variant";
  if (asked === "simd128" && !simd) {
    variant = "scalar";
    why = "simd128 asked for, but this browser lacks WebAssembly SIMD";
  }
}
const MODELS = { f32: "pkg/model.cnet", int8: "pkg/model.int8.cnet" };
const kind = params.get("model") === "int8" ? "int8" : "f32";

/** This page's address with `key` set to `value`, the other choices kept. */
function withParam(key, value) {
  const p = new URLSearchParams(params);
  p.set(key, value);
  return `?${p}`;
}

// --- The pad ------------------------------------------------------------------------------

// The bitmap follows the screen's pixel density; the preprocessing does not care about size.
const dpr = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
pad.width = pad.height = Math.round(280 * dpr);
const ctx = pad.getContext("2d", { willReadFrequently: true });

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = PEN * dpr;
  ctx.lineCap = ctx.lineJoin = "round";
}

function at(e) {
  const r = pad.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * pad.width) / r.width, y: ((e.clientY - r.top) * pad.height) / r.height };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function segment(a, b) {
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

let pen = null; // { id, last } while a pointer draws

pad.addEventListener("pointerdown", (e) => {
  if (pen || (e.pointerType === "mouse" && e.button !== 0)) return;
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  pen = { id: e.pointerId, last: at(e) };
  dot(pen.last);
  schedule();
});

pad.addEventListener("pointermove", (e) => {
  if (!pen || e.pointerId !== pen.id) return;
  // Coalesced events keep fast strokes smooth: the browser may merge several moves into one.
  const merged = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of merged.length ? merged : [e]) {
    const p = at(ev);
    segment(pen.last, p);
    pen.last = p;
  }
  schedule();
});

function penUp(e) {
  if (!pen || e.pointerId !== pen.id) return;
  pen = null;
  schedule({ time: true });
}
pad.addEventListener("pointerup", penUp);
pad.addEventListener("pointercancel", penUp);

function clearAll() {
  clearPad();
  showNothing();
}
$("clear").addEventListener("click", clearAll);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" || e.key === "Delete") clearAll();
});

// --- Classifying ---------------------------------------------------------------------------

let net = null;
let frame = 0;
let timeNext = false;
let updates = 0;
let timings = 0;

// At most one classification per animation frame, however many pointer events came.
function schedule({ time = false } = {}) {
  timeNext ||= time;
  if (!frame) frame = requestAnimationFrame(update);
}

function update() {
  frame = 0;
  if (!net) return;
  const image = ctx.getImageData(0, 0, pad.width, pad.height);
  const input = mnistInput(image.data, pad.width, pad.height, { stride: 4 });
  if (!input) {
    showNothing();
    return;
  }
  const digit = net.classify(input);
  updates += 1;
  body.dataset.updates = updates;
  show(digit, net.top(3), input);
  if (timeNext) {
    timeNext = false;
    showTiming();
  }
}

const percent = (p) => (p >= 0.9995 ? "100 %" : p < 0.001 ? "<0.1 %" : `${(100 * p).toFixed(1)} %`);

function show(digit, top, input) {
  const prediction = $("prediction");
  prediction.textContent = digit;
  prediction.dataset.digit = digit;
  $("confidence").textContent = `${percent(top[0].probability)} sure`;
  $("top3").querySelectorAll("li").forEach((li, i) => {
    const { digit: d, probability: p } = top[i];
    li.dataset.digit = d;
    li.dataset.p = p;
    li.querySelector(".d").textContent = d;
    li.querySelector(".bar > span").style.width = `${(100 * p).toFixed(1)}%`;
    li.querySelector(".p").textContent = percent(p);
  });
  drawInput(input);
}

function showNothing() {
  const prediction = $("prediction");
  prediction.textContent = "–";
  prediction.dataset.digit = "";
  $("confidence").textContent = "draw to start";
  $("top3").querySelectorAll("li").forEach((li) => {
    delete li.dataset.digit;
    delete li.dataset.p;
    li.querySelector(".d").textContent = "–";
    li.querySelector(".bar > span").style.width = "0";
    li.querySelector(".p").textContent = "";
  });
  drawInput(new Uint8Array(SIDE * SIDE));
}

function drawInput(input) {
  const ctx28 = input28.getContext("2d");
  const image = ctx28.createImageData(SIDE, SIDE);
  for (let i = 0; i < input.length; i++) {
    image.data.set([input[i], input[i], input[i], 255], 4 * i);
  }
  ctx28.putImageData(image, 0, 0);
}

// Mean time of one classify() call: the module converts the 784 pixels, runs the network and
// the softmax. performance.now() is coarse in browsers, so it times many calls.
function showTiming() {
  const { microseconds, calls } = net.timeClassify(TIMING_MS);
  const timing = $("timing");
  timing.textContent = `${microseconds.toFixed(1)} µs per call`;
  timing.dataset.us = microseconds;
  timing.title = `mean of ${calls} calls of classify() on the current input`;
  timings += 1;
  body.dataset.timings = timings;
}

// --- Start ---------------------------------------------------------------------------------

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  return response.arrayBuffer();
}

async function start() {
  clearPad();
  showNothing();
  $("variant").textContent = `loading ${variant}…`;
  $("model").textContent = `loading ${kind}…`;
  try {
    const [wasm, blob] = await Promise.all([fetchBytes(`pkg/constnet-${variant}.wasm`), fetchBytes(MODELS[kind])]);
    const loaded = await Constnet.instantiate(wasm);
    loaded.loadModel(blob, kind === "int8" ? KIND_I8 : KIND_F32);
    net = loaded;
  } catch (e) {
    $("variant").textContent = `${variant}: not loaded`;
    $("model").textContent = `${kind}: not loaded`;
    $("status").textContent = `${e.message}. Build the page first: examples/web/build.sh`;
    body.dataset.state = "error";
    return;
  }
  $("variant").textContent = `WebAssembly ${net.variant}`;
  $("variant").title = why;
  const other = variant === "simd128" ? "scalar" : simd ? "simd128" : null;
  const link = $("switch");
  if (other) {
    link.href = withParam("variant", other);
    link.textContent = `try ${other}`;
  } else {
    link.remove();
  }
  const otherKind = kind === "int8" ? "f32" : "int8";
  $("switch-model").href = withParam("model", otherKind);
  $("switch-model").textContent = `try ${otherKind}`;
  $("model").textContent = kind;
  // A first timing on the blank input (the network's cost does not depend on the pixels),
  // after a warm-up: engines first run WebAssembly through a quick baseline compiler and swap
  // in optimised code, compiled in the background, once a function has run for a while.
  net.classify(new Uint8Array(SIDE * SIDE));
  net.timeClassify(TIMING_MS);
  await new Promise((resolve) => setTimeout(resolve, 100));
  showTiming();
  fetch("pkg/model.json")
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => {
      if (!info?.[kind]) return;
      const { bytes, testAccuracy } = info[kind];
      const size = `${kind}, ${Math.round(bytes / 1024)} KiB`;
      $("model").textContent = testAccuracy ? `${size}, ${testAccuracy} test accuracy` : size;
    })
    .catch(() => {});
  body.dataset.state = "ready";
  if (pen === null) schedule(); // anything drawn while loading
}

start();
