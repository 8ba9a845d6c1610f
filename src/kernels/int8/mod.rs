//! The int8 kernel: one quantized dense layer (TFLite / CMSIS-NN `fully_connected` arithmetic)
//! over a batch of u8 activations, on every instruction set.
//!
//! Plain algorithm, for output row `o` of sample `s` (what [`crate::quant::reference`] spells
//! out with signed activations and zero points):
//!
//! ```text
//! acc = bias[o] + Σ_k w[o][k]·a[s][k]           (i32; a is u8, w is i8)
//! r   = requantize(acc, multiplier[o], shift[o])
//! y   = clamp(r + zp_out, lo, 127) + 128  (u8)   or   y = r  (i32 logits)
//! ```
//!
//! # Layouts
//!
//! - **Activations** are u8 in *offset form*: `a = q + 128` for the int8 value `q`, so that
//!   the products are u8 × i8, which is what `vpdpbusd` multiplies. A sample is a row of
//!   [`stride`]`(IN)` bytes (IN rounded up to 4); the padding bytes may hold anything.
//! - **Weights** are *packed* in blocks of [`GROUP`] = 16 output rows × [`QUAD`] = 4 inputs,
//!   64 bytes: block `(g, q)` (rows `16g..16g+16`, inputs `4q..4q+4`) starts at byte
//!   `(g·quads + q)·64` and holds row `r`'s 4 weights at `4r..4r+4` ([`packed_index`]). One
//!   block is one AVX-512 register: broadcast the sample's 4 bytes, one `vpdpbusd`, and the
//!   16 lanes hold 16 rows' partial sums, so no horizontal sum is ever needed. Rows past OUT
//!   and inputs past IN are zero (the model loaders check it), which is why the padding of the
//!   activations does not matter.
//! - **Per-row constants** (`bias`, `multiplier`, `shift`) hold [`padded_rows`]`(OUT)` values,
//!   a whole number of groups, so a group's constants are one vector load.
//! - **Outputs** are u8 rows of `stride(OUT)` bytes (offset form, the next layer's input), or
//!   i32 rows of `OUT` values. Only the OUT valid values of a row are written.
//!
//! # Exactness
//!
//! The arithmetic is integer and every path computes exactly the same numbers: the products
//! and sums are exact in i32 for the bounds the loaders enforce (`|bias| ≤ 2^28`, IN ≤ 4096,
//! so `|acc| < 2^29`), and [`requantize`] is TFLite's single-rounding `MultiplyByQuantizedMultiplier`
//! with `shift` in `-31..=0`, done with 64-bit products on every path. The AVX2 path widens
//! to i16 and uses `vpmaddwd` rather than `vpmaddubsw`, which saturates at i16.
//!
//! # Paths
//!
//! [`Int8Path`]: AVX-512 VNNI, AVX-VNNI (256-bit), AVX2, and a scalar path for every target.
//! [`Int8Path::selected`] follows the f32 selection ([`super::selected`], `CONSTNET_SIMD`):
//! the best int8 path within the f32 path's instruction set.

#[cfg(target_arch = "x86_64")]
mod x86;

/// Output rows per packed weight block.
pub const GROUP: usize = 16;
/// Inputs per packed weight block.
pub const QUAD: usize = 4;
/// Bytes per packed weight block.
pub const BLOCK: usize = GROUP * QUAD;
/// The widest layer input the loaders accept: keeps `|acc| < 2^29` (see the module docs).
pub const MAX_INPUTS: usize = 4096;
/// The bound on `|bias|` the loaders enforce.
pub const MAX_BIAS: i32 = 1 << 28;

/// Groups of [`GROUP`] rows covering `out` rows.
pub const fn groups(out: usize) -> usize {
    out.div_ceil(GROUP)
}

/// `out` rounded up to whole groups: the length of the per-row constants.
pub const fn padded_rows(out: usize) -> usize {
    groups(out) * GROUP
}

/// Bytes per activation row of `width` values: `width` rounded up to a multiple of [`QUAD`].
pub const fn stride(width: usize) -> usize {
    width.div_ceil(QUAD) * QUAD
}

/// Bytes of the packed weights of an `out × inp` layer.
pub const fn packed_len(out: usize, inp: usize) -> usize {
    padded_rows(out) * stride(inp)
}

/// Where weight `w[o][k]` of a layer with `inp` inputs lives in the packed layout.
pub const fn packed_index(o: usize, k: usize, inp: usize) -> usize {
    let quads = stride(inp) / QUAD;
    ((o / GROUP) * quads + k / QUAD) * BLOCK + (o % GROUP) * QUAD + k % QUAD
}

/// TFLite's `MultiplyByQuantizedMultiplier` (single rounding, as with `TFLITE_SINGLE_ROUNDING`
/// and CMSIS-NN's `CMSIS_NN_USE_SINGLE_ROUNDING`): `acc · multiplier · 2^shift / 2^31`,
/// rounded half up, in exact 64-bit integer arithmetic.
///
/// `multiplier` is in `0..2^31` and `shift` in `-31..=0` (the loaders check both).
pub const fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total_shift = 31 - shift;
    let round = 1i64 << (total_shift - 1);
    ((acc as i64 * multiplier as i64 + round) >> total_shift) as i32
}

/// What a layer writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// int8 activations (stored in offset form): `clamp(r + zero_point, lo, 127)`, `lo` the
    /// zero point when the ReLU is folded into the clamp, else -128.
    Int8 {
        /// The output zero point.
        zero_point: i32,
        /// Whether the layer's ReLU is folded into the clamp.
        relu: bool,
    },
    /// The requantized i32 values themselves (the logits).
    Int32,
}

impl Output {
    /// The lowest int8 value the clamp lets through.
    pub const fn low(self) -> i32 {
        match self {
            Output::Int8 {
                zero_point,
                relu: true,
            } => zero_point,
            _ => -128,
        }
    }

    /// The int8 activation (offset form, `q + 128`) of the requantized value `r`.
    pub const fn to_u8(self, r: i32) -> u8 {
        let zp = match self {
            Output::Int8 { zero_point, .. } => zero_point,
            Output::Int32 => 0,
        };
        let q = r + zp;
        let low = self.low();
        let q = if q < low {
            low
        } else if q > 127 {
            127
        } else {
            q
        };
        (q + 128) as u8
    }
}

/// One quantized dense layer, as the kernel reads it (see the module docs for the layouts).
#[derive(Clone, Copy, Debug)]
pub struct QDense<'a> {
    /// Output rows.
    pub out: usize,
    /// Inputs.
    pub inp: usize,
    /// Packed i8 weights, [`packed_len`]`(out, inp)` bytes.
    pub weights: &'a [i8],
    /// The kernel's bias: TFLite's bias with the input zero point folded in,
    /// `bias[o] − (zp_in + 128)·Σ_k w[o][k]`, [`padded_rows`]`(out)` values.
    pub bias: &'a [i32],
    /// Requantization multipliers, `0..2^31`.
    pub multiplier: &'a [i32],
    /// Requantization shifts, `-31..=0`.
    pub shift: &'a [i32],
    /// What the layer writes.
    pub output: Output,
}

/// Where a layer writes.
#[derive(Debug)]
pub enum Dst<'a> {
    /// int8 activations in offset form, `[batch][stride(out)]` (for [`Output::Int8`]).
    U8(&'a mut [u8]),
    /// i32 values, `[batch][out]` (for [`Output::Int32`]).
    I32(&'a mut [i32]),
}

/// An int8 kernel path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Int8Path {
    /// AVX-512F + AVX512-VNNI: `vpdpbusd` on 16 rows at once.
    Avx512Vnni,
    /// AVX2 + AVX-VNNI: `vpdpbusd` on 256-bit registers.
    AvxVnni,
    /// AVX2: widened to i16, `vpmaddwd`.
    Avx2,
    /// Plain integer loops; every target.
    Scalar,
}

impl Int8Path {
    /// Every path, best first.
    pub const ALL: [Int8Path; 4] = [
        Int8Path::Avx512Vnni,
        Int8Path::AvxVnni,
        Int8Path::Avx2,
        Int8Path::Scalar,
    ];

    /// Its name: `avx512vnni`, `avxvnni`, `avx2`, `scalar`.
    pub const fn name(self) -> &'static str {
        match self {
            Int8Path::Avx512Vnni => "avx512vnni",
            Int8Path::AvxVnni => "avxvnni",
            Int8Path::Avx2 => "avx2",
            Int8Path::Scalar => "scalar",
        }
    }

    /// Whether this CPU runs it (detected at run time with std, else the compile-time target
    /// features).
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx512Vnni => x86::has_avx512vnni(),
            #[cfg(target_arch = "x86_64")]
            Int8Path::AvxVnni => x86::has_avxvnni(),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx2 => x86::has_avx2(),
            Int8Path::Scalar => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this CPU runs, best first.
    pub fn supported() -> impl Iterator<Item = Int8Path> {
        Int8Path::ALL.into_iter().filter(|p| p.is_supported())
    }

    /// The best int8 path within the instruction set of the f32 path [`super::selected`]
    /// (so `CONSTNET_SIMD=scalar` makes the int8 kernels scalar too).
    pub fn selected() -> Int8Path {
        use super::Isa;
        let allowed: &[Int8Path] = match super::selected() {
            Isa::Avx512 => &[Int8Path::Avx512Vnni, Int8Path::AvxVnni, Int8Path::Avx2],
            Isa::Avx2 => &[Int8Path::AvxVnni, Int8Path::Avx2],
            _ => &[],
        };
        allowed
            .iter()
            .copied()
            .find(|p| p.is_supported())
            .unwrap_or(Int8Path::Scalar)
    }
}

impl core::fmt::Display for Int8Path {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `layer` on `batch` samples `x` (`[batch][stride(inp)]` u8) into `dst` on `path`.
///
/// # Panics
/// If a slice has the wrong length, `dst` does not match the layer's [`Output`], or this CPU
/// cannot run `path`: these are bugs in the caller, not input errors.
pub fn qdense(path: Int8Path, layer: &QDense<'_>, x: &[u8], batch: usize, mut dst: Dst<'_>) {
    check(layer, x, batch, &dst);
    assert!(
        path.is_supported(),
        "the {path} int8 kernels need instructions this CPU lacks"
    );
    if batch == 0 {
        return;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports the path (asserted) and the shapes were checked.
        p @ (Int8Path::Avx512Vnni | Int8Path::AvxVnni | Int8Path::Avx2) => unsafe {
            x86::qdense(p, layer, x, batch, &mut dst)
        },
        _ => scalar(layer, x, batch, &mut dst),
    }
}

/// Panics unless every slice holds what the dimensions say.
fn check(l: &QDense<'_>, x: &[u8], batch: usize, dst: &Dst<'_>) {
    let rows = padded_rows(l.out);
    assert!(
        l.out > 0 && l.inp > 0 && l.inp <= MAX_INPUTS,
        "qdense: {}×{}",
        l.out,
        l.inp
    );
    assert_eq!(
        l.weights.len(),
        packed_len(l.out, l.inp),
        "qdense: packed weights"
    );
    for (name, s) in [
        ("bias", l.bias),
        ("multiplier", l.multiplier),
        ("shift", l.shift),
    ] {
        assert_eq!(s.len(), rows, "qdense: `{name}` holds {} values", s.len());
    }
    assert_eq!(x.len(), batch * stride(l.inp), "qdense: `x` length");
    match (dst, l.output) {
        (Dst::U8(y), Output::Int8 { .. }) => {
            assert_eq!(y.len(), batch * stride(l.out), "qdense: u8 `y` length")
        }
        (Dst::I32(y), Output::Int32) => {
            assert_eq!(y.len(), batch * l.out, "qdense: i32 `y` length")
        }
        _ => panic!("qdense: the destination does not match the layer's output kind"),
    }
}

/// The scalar path: the algorithm of the module docs, a group of [`GROUP`] rows at a time.
///
/// Each packed block is read once, front to back, into 16 accumulators: the same walk as the
/// SIMD paths, which compilers vectorise where they can (wasm simd128) and which reads the
/// weights in order on a microcontroller. Integer sums are exact in any order, so this
/// equals the reference bit for bit.
fn scalar(l: &QDense<'_>, x: &[u8], batch: usize, dst: &mut Dst<'_>) {
    let sx = stride(l.inp);
    let quads = sx / QUAD;
    for (s, a) in x.chunks_exact(sx).take(batch).enumerate() {
        for g in 0..groups(l.out) {
            let mut acc = [0i32; GROUP];
            acc.copy_from_slice(&l.bias[g * GROUP..][..GROUP]);
            let blocks = l.weights[g * quads * BLOCK..][..quads * BLOCK].chunks_exact(BLOCK);
            for (block, a) in blocks.zip(a.chunks_exact(QUAD)) {
                for (acc, w) in acc.iter_mut().zip(block.chunks_exact(QUAD)) {
                    for (&w, &a) in w.iter().zip(a) {
                        *acc += i32::from(w) * i32::from(a);
                    }
                }
            }
            for (r, &acc) in acc.iter().enumerate() {
                let o = g * GROUP + r;
                if o >= l.out {
                    break;
                }
                let r = requantize(acc, l.multiplier[o], l.shift[o]);
                match dst {
                    Dst::U8(y) => y[s * stride(l.out) + o] = l.output.to_u8(r),
                    Dst::I32(y) => y[s * l.out + o] = r,
                }
            }
        }
    }
}
