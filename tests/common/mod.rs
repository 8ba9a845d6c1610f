//! Shared test helpers: a seeded generator, edge-biased values, tolerance-aware comparison and
//! an allocation counter.
#![allow(dead_code)]

pub mod alloc_counter;

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// The generator every test draws from, seeded so a failure reproduces.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform in `[lo, hi)`.
pub fn uniform(rng: &mut Xoshiro256PlusPlus, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    lo + (hi - lo) * unit
}

/// Uniform integer in `lo..=hi`.
pub fn int(rng: &mut Xoshiro256PlusPlus, lo: usize, hi: usize) -> usize {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
}

/// `n` floats uniform in `[-1, 1)`.
pub fn floats(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| uniform(rng, -1.0, 1.0)).collect()
}

/// `n` small integers in `-4..=4` stored as floats: products and sums of up to 2^18 terms are
/// exact in f32, so every kernel must match its reference bit for bit.
pub fn small_ints(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| int(rng, 0, 8) as f32 - 4.0).collect()
}

/// Mostly uniform values with one in eight drawn from the edge cases: zeros of both signs,
/// ±1, a subnormal, moderately large values, ±inf and NaN. Magnitudes stay small enough that
/// no finite partial sum overflows, so inf/NaN come only from the special inputs.
pub fn edge_biased(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    const EDGES: [f32; 10] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e-40,
        1e3,
        -1e3,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    (0..n)
        .map(|_| {
            if rng.next_u32().is_multiple_of(8) {
                EDGES[int(rng, 0, EDGES.len() - 1)]
            } else {
                uniform(rng, -1.0, 1.0)
            }
        })
        .collect()
}

/// The error bound for a sum of `k` products computed in f32 in any order: each result is
/// within `γ_k·S` of the exact value, where `S = Σ|a_p·b_p|` (Higham, Accuracy and Stability
/// of Numerical Algorithms, §3.1) and `γ_k ≈ k·ε`. Two such results differ by at most twice
/// that; `extra` roundings (bias add, accumulate) each add `ε·magnitude`. FMA rounds once where
/// mul+add rounds twice, which the bound already covers.
pub fn dot_tolerance(k: usize, abs_sum: f32, extra: usize, magnitude: f32) -> f32 {
    2.0 * (k as f32 + 1.0) * f32::EPSILON * abs_sum
        + 2.0 * extra as f32 * f32::EPSILON * magnitude
        + 1e-35
}

/// Asserts that `got` matches `want` within `tol[i]` element by element; NaN must meet NaN
/// and an infinity the same infinity. Prints the case, the index, both values and the bound.
#[track_caller]
pub fn assert_close(case: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f32) {
    assert_eq!(got.len(), want.len(), "{case}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol(i)
        };
        assert!(
            ok,
            "{case}: element {i}: got {g:e}, want {w:e} (|diff| {:e} > tol {:e})",
            (g - w).abs(),
            tol(i)
        );
    }
}

/// Asserts exact equality under `==` (so `-0.0 == 0.0`), NaN meeting NaN.
#[track_caller]
pub fn assert_exact(case: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{case}: element {i}: got {g:e}, want {w:e}"
        );
    }
}

/// The MNIST directory for tests that need the real data: `$MNIST_DIR`, else `./data/mnist`.
/// Panics with instructions when the files are not there: these tests never skip silently.
pub fn mnist_dir() -> std::path::PathBuf {
    let (dir, chosen_by) = constnet::data::mnist::data_dir(None);
    let found = constnet::data::mnist::FILES.iter().all(|name| {
        let dotted = name.replacen("-idx", ".idx", 1);
        [
            name.to_string(),
            dotted.clone(),
            format!("{name}.gz"),
            format!("{dotted}.gz"),
        ]
        .iter()
        .any(|f| dir.join(f).is_file())
    });
    assert!(
        found,
        "this test needs the MNIST files, not found in {} (chosen: {chosen_by:?}); set MNIST_DIR to the directory \
         holding train-images-idx3-ubyte etc. (.ci/run uses ../shared/data/mnist)",
        dir.display()
    );
    dir
}

/// A fresh empty directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("constnet-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bytes of an IDX image file: magic 0x00000803, dims, pixels.
pub fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    bytes
}

/// The bytes of an IDX label file: magic 0x00000801, count, labels.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    bytes
}

/// Gzip-compresses bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A small synthetic MNIST-shaped dataset (28×28 images, labels 0–9) written into `dir` under
/// the canonical names; returns (train pixels, train labels, test pixels, test labels).
pub fn write_synthetic_mnist(
    dir: &std::path::Path,
    train: u32,
    test: u32,
) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let pixels = |n: u32, salt: u32| -> Vec<u8> {
        (0..n * 784)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt) >> 24) as u8)
            .collect()
    };
    let labels = |n: u32| -> Vec<u8> { (0..n).map(|i| (i % 10) as u8).collect() };
    let (tp, tl, sp, sl) = (
        pixels(train, 1),
        labels(train),
        pixels(test, 2),
        labels(test),
    );
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_images(train, 28, 28, &tp),
    )
    .unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels(&tl)).unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_images(test, 28, 28, &sp),
    )
    .unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(&sl)).unwrap();
    (tp, tl, sp, sl)
}

/// Every parameter of a network as bits, for bit-for-bit comparisons.
pub fn param_bits<N: constnet::Network>(net: &N) -> Vec<u32> {
    (0..N::TENSORS)
        .flat_map(|i| {
            net.tensor(i)
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the tests of kernel path `isa` can run on this CPU. When not, says so by name on
/// the test's stderr (written around libtest's capture, so it shows in every run).
pub fn path_runs(isa: constnet::kernels::Isa) -> bool {
    let runs = isa.is_supported();
    if !runs {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "not run: the {} kernel path (this CPU lacks it)",
            isa.name()
        );
    }
    runs
}

/// Generates, for every kernel path this target has, a module of tests that run the given
/// generic test functions (`fn name<K: Backend>()`) on that path: `avx512::name`,
/// `avx2::name`, `sse2::name` (x86-64), `portable::name` (elsewhere) and `scalar::name`. A
/// path this CPU lacks is reported as not run (see [`path_runs`]).
#[macro_export]
macro_rules! on_every_path {
    ($($test:ident),* $(,)?) => {
        #[cfg(target_arch = "x86_64")]
        $crate::on_every_path!(@path avx512, Avx512; $($test),*);
        #[cfg(target_arch = "x86_64")]
        $crate::on_every_path!(@path avx2, Avx2; $($test),*);
        #[cfg(target_arch = "x86_64")]
        $crate::on_every_path!(@path sse2, Sse2; $($test),*);
        #[cfg(not(target_arch = "x86_64"))]
        $crate::on_every_path!(@path portable, Portable; $($test),*);
        $crate::on_every_path!(@path scalar, Scalar; $($test),*);
    };
    (@path $module:ident, $path:ident; $($test:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    if $crate::common::path_runs(constnet::kernels::Isa::$path) {
                        super::$test::<constnet::kernels::$path>();
                    }
                }
            )*
        }
    };
}

/// `$CONSTNET_PYTHON` (which must then import `modules`, e.g. `"onnxruntime, numpy"`), else a
/// `python3` that imports them, else `None` (the caller skips, saying so).
pub fn python_with(modules: &str) -> Option<String> {
    let works = |python: &str| {
        std::process::Command::new(python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Ok(python) = std::env::var("CONSTNET_PYTHON") {
        assert!(
            works(&python),
            "CONSTNET_PYTHON={python} cannot import {modules}"
        );
        return Some(python);
    }
    works("python3").then(|| "python3".into())
}

/// The step of the finite-difference gradient checks.
pub const H: f64 = 1e-5;

/// `v` in f64, for the finite-difference checks.
pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Central difference of `f` with respect to element `i` of `v`, with step [`H`].
pub fn central_difference(v: &mut [f64], i: usize, mut f: impl FnMut(&[f64]) -> f64) -> f64 {
    let keep = v[i];
    v[i] = keep + H;
    let up = f(v);
    v[i] = keep - H;
    let down = f(v);
    v[i] = keep;
    (up - down) / (2.0 * H)
}

/// Mean softmax cross-entropy in f64 of logits `z` (`[classes][batch]`, a sample per column).
pub fn xent64(classes: usize, batch: usize, z: &[f64], labels: &[u32]) -> f64 {
    let mut total = 0.0;
    for j in 0..batch {
        let max = (0..classes)
            .map(|c| z[c * batch + j])
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..classes).map(|c| (z[c * batch + j] - max).exp()).sum();
        total += max + sum.ln() - z[labels[j] as usize * batch + j];
    }
    total / batch as f64
}
