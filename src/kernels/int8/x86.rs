//! The x86-64 int8 paths: AVX-512 VNNI, AVX-VNNI and AVX2, one generic tile loop over a
//! per-path accumulator ([`Acc`]).
//!
//! The tile is MR samples × NG groups of 16 rows. For each quad of inputs it loads NG weight
//! blocks once and broadcasts each sample's 4 activation bytes once, then does MR·NG block
//! products; MR·NG independent accumulators hide the latency of `vpdpbusd`. One sample
//! (GEMV) uses MR = 1 and as many groups as registers allow; a batch uses more samples and
//! fewer groups, walking all samples for one group tile so its weights stay in L1. Edge tiles
//! repeat the last sample or group and do not store the repeats.
//!
//! Safety: every function here runs intrinsics of its path and is only reached through
//! [`qdense`], whose caller checked that the CPU supports the path and that every slice has the
//! length its dimensions say; the raw pointers below stay inside those slices (argued where
//! they are formed).

use super::{BLOCK, Dst, GROUP, Int8Path, Output, QDense, QUAD, groups, stride};
use core::arch::x86_64::*;

/// Whether this CPU has AVX-512F and AVX512-VNNI.
pub(super) fn has_avx512vnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512vnni"
        ))
    }
}

/// Whether this CPU has AVX2 and AVX-VNNI.
pub(super) fn has_avxvnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "avxvnni"))
    }
}

/// Whether this CPU has AVX2.
pub(super) fn has_avx2() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx2")
    }
}

/// Runs the layer on an x86 path.
///
/// # Safety
/// The CPU must support `path`; the shapes must have been checked ([`super::qdense`]).
// SAFETY (contract): see `# Safety` above; `super::qdense` asserts both before calling.
pub(super) unsafe fn qdense(
    path: Int8Path,
    l: &QDense<'_>,
    x: &[u8],
    batch: usize,
    dst: &mut Dst<'_>,
) {
    // SAFETY: the caller guarantees the CPU supports `path` and has checked the shapes.
    unsafe {
        match path {
            Int8Path::Avx512Vnni => enter_avx512vnni(l, x, batch, dst),
            Int8Path::AvxVnni => enter_avxvnni(l, x, batch, dst),
            _ => enter_avx2(l, x, batch, dst),
        }
    }
}

/// The accumulators of one group of 16 rows for one sample, on one path.
trait Acc: Copy {
    /// A sample's 4 activation bytes, broadcast as the path needs them.
    type X: Copy;
    /// A weight block, loaded as the path needs it.
    type W: Copy;
    // SAFETY (contract): only inside this path's entry; pointers within the checked slices.
    unsafe fn zero() -> Self;
    /// # Safety: `p..p + 4` readable.
    // SAFETY (contract): only inside this path's entry; pointers within the checked slices.
    unsafe fn load_x(p: *const u8) -> Self::X;
    /// # Safety: `p..p + 64` readable.
    // SAFETY (contract): only inside this path's entry; pointers within the checked slices.
    unsafe fn load_w(p: *const i8) -> Self::W;
    /// `self += w · x` for the block's 16 rows × 4 inputs.
    // SAFETY (contract): only inside this path's entry; pointers within the checked slices.
    unsafe fn step(self, x: Self::X, w: Self::W) -> Self;
    /// Adds the bias, requantizes and writes the group's valid rows (see [`emit`]).
    // SAFETY (contract): only inside this path's entry; pointers within the checked slices.
    unsafe fn emit(self, l: &QDense<'_>, g: usize, s: usize, dst: &mut Dst<'_>);
}

/// The tile loop (see the module docs), MR samples × NG groups.
#[inline(always)]
// SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
unsafe fn tiles<A: Acc, const MR: usize, const NG: usize>(
    l: &QDense<'_>,
    x: &[u8],
    batch: usize,
    dst: &mut Dst<'_>,
) {
    let sx = stride(l.inp);
    let quads = sx / QUAD;
    let groups = groups(l.out);
    let w = l.weights.as_ptr();
    let mut g0 = 0;
    while g0 < groups {
        let mut gs = [0; NG];
        for (j, g) in gs.iter_mut().enumerate() {
            *g = (g0 + j).min(groups - 1);
        }
        let mut s0 = 0;
        while s0 < batch {
            let mut xs = [x.as_ptr(); MR];
            for (i, p) in xs.iter_mut().enumerate() {
                // SAFETY: in bounds: each sample index is < batch and x holds batch rows of sx bytes.
                *p = unsafe { p.add((s0 + i).min(batch - 1) * sx) };
            }
            // SAFETY: a zeroing intrinsic of this path, inside its entry (the module's contract).
            let mut acc = [[unsafe { A::zero() }; NG]; MR];
            for q in 0..quads {
                // SAFETY: in bounds: block (g, q) with g < groups, q < quads lies in the packed weights.
                let mut ws = [unsafe { A::load_w(w.add((gs[0] * quads + q) * BLOCK)) }; NG];
                for j in 1..NG {
                    // SAFETY: in bounds as above (gs[j] < groups).
                    ws[j] = unsafe { A::load_w(w.add((gs[j] * quads + q) * BLOCK)) };
                }
                for i in 0..MR {
                    // SAFETY: in bounds: q < quads, and a sample row holds quads·4 bytes.
                    let xv = unsafe { A::load_x(xs[i].add(q * QUAD)) };
                    for j in 0..NG {
                        // SAFETY: register arithmetic of this path, inside its entry.
                        acc[i][j] = unsafe { acc[i][j].step(xv, ws[j]) };
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                for (j, acc) in acc.iter().enumerate() {
                    if s0 + i < batch && g0 + j < groups {
                        // SAFETY: s < batch and g < groups: `emit` writes only that sample's checked rows.
                        unsafe { acc.emit(l, gs[j], s0 + i, dst) };
                    }
                }
            }
            s0 += MR;
        }
        g0 += NG;
    }
}

/// Picks the group tile for one sample (up to `ONE` groups) or a batch.
macro_rules! dispatch {
    ($acc:ty, $l:ident, $x:ident, $batch:ident, $dst:ident; one: $($g1:literal)|+; batch $mr:literal: $($gb:literal)|+) => {{
        let groups = groups($l.out);
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        unsafe {
            if $batch == 1 {
                dispatch!(@pick $acc, 1, groups, $l, $x, $batch, $dst; $($g1)|+)
            } else {
                dispatch!(@pick $acc, $mr, groups, $l, $x, $batch, $dst; $($gb)|+)
            }
        }
    }};
    // The largest listed tile that is not wider than the layer (the smallest otherwise).
    (@pick $acc:ty, $mr:literal, $groups:ident, $l:ident, $x:ident, $batch:ident, $dst:ident; $first:literal $(| $rest:literal)*) => {{
        $(if $groups >= $rest {
            return tiles::<$acc, $mr, $rest>($l, $x, $batch, $dst);
        })*
        tiles::<$acc, $mr, $first>($l, $x, $batch, $dst)
    }};
}

#[target_feature(enable = "avx512f,avx512vnni")]
// SAFETY (contract): only on a CPU with these features, after `qdense` checked the shapes.
unsafe fn enter_avx512vnni(l: &QDense<'_>, x: &[u8], batch: usize, dst: &mut Dst<'_>) {
    dispatch!(Vnni512, l, x, batch, dst; one: 1 | 8 | 4 | 2; batch 8: 1 | 2)
}

#[target_feature(enable = "avx2,avxvnni")]
// SAFETY (contract): only on a CPU with these features, after `qdense` checked the shapes.
unsafe fn enter_avxvnni(l: &QDense<'_>, x: &[u8], batch: usize, dst: &mut Dst<'_>) {
    dispatch!(VnniYmm, l, x, batch, dst; one: 1 | 4 | 2; batch 4: 1)
}

#[target_feature(enable = "avx2")]
// SAFETY (contract): only on a CPU with these features, after `qdense` checked the shapes.
unsafe fn enter_avx2(l: &QDense<'_>, x: &[u8], batch: usize, dst: &mut Dst<'_>) {
    dispatch!(Madd, l, x, batch, dst; one: 1 | 2; batch 2: 1)
}

/// One zmm of 16 row sums (AVX-512 VNNI).
#[derive(Clone, Copy)]
struct Vnni512(__m512i);

impl Acc for Vnni512 {
    type X = __m512i;
    type W = __m512i;
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn zero() -> Self {
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        Self(unsafe { _mm512_setzero_si512() })
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn load_x(p: *const u8) -> __m512i {
        // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
        unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn load_w(p: *const i8) -> __m512i {
        // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn step(self, x: __m512i, w: __m512i) -> Self {
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        Self(unsafe { _mm512_dpbusd_epi32(self.0, x, w) })
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn emit(self, l: &QDense<'_>, g: usize, s: usize, dst: &mut Dst<'_>) {
        let o = g * GROUP;
        // SAFETY: in bounds: the per-row constants hold whole groups.
        let r = unsafe {
            requantize512(
                self.0,
                l.bias.as_ptr().add(o),
                l.multiplier.as_ptr().add(o),
                l.shift.as_ptr().add(o),
            )
        };
        if let (Dst::U8(y), Output::Int8 { zero_point, .. }) = (&mut *dst, l.output) {
            // The clamp and the narrowing in registers: the store is a quarter of the work of
            // a batch's epilogue when done value by value.
            let n = GROUP.min(l.out - o);
            let y = &mut y[s * stride(l.out) + o..][..n];
            // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
            let bytes = unsafe {
                let v = _mm512_add_epi32(r, _mm512_set1_epi32(zero_point));
                let v = _mm512_max_epi32(v, _mm512_set1_epi32(l.output.low()));
                let v = _mm512_min_epi32(v, _mm512_set1_epi32(127));
                _mm512_cvtepi32_epi8(_mm512_add_epi32(v, _mm512_set1_epi32(128)))
            };
            if n == GROUP {
                // SAFETY: in bounds: `y` holds exactly 16 bytes.
                unsafe { _mm_storeu_si128(y.as_mut_ptr().cast(), bytes) };
            } else {
                let mut all = [0u8; GROUP];
                // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
                unsafe { _mm_storeu_si128(all.as_mut_ptr().cast(), bytes) };
                y.copy_from_slice(&all[..n]);
            }
            return;
        }
        let mut out = [0i32; GROUP];
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), r) };
        store(l, g, s, &out, dst);
    }
}

/// `requantize` on 16 lanes: bias added, 64-bit products of the even and odd lanes, an
/// arithmetic shift by `30 − shift`, then `(q + 1) >> 1` (equal to TFLite's rounding, and in
/// range: `|q| < 2^30` for `|acc| < 2^29`).
#[inline(always)]
// SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
unsafe fn requantize512(acc: __m512i, b: *const i32, m: *const i32, sh: *const i32) -> __m512i {
    // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
    unsafe {
        let a = _mm512_add_epi32(acc, _mm512_loadu_si512(b.cast()));
        let m = _mm512_loadu_si512(m.cast());
        let t = _mm512_sub_epi32(_mm512_set1_epi32(30), _mm512_loadu_si512(sh.cast()));
        let even = _mm512_mul_epi32(a, m);
        let odd = _mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(m));
        let t_even = _mm512_and_si512(t, _mm512_set1_epi64(0xffff_ffff));
        let t_odd = _mm512_srli_epi64::<32>(t);
        let q_even = _mm512_srav_epi64(even, t_even);
        let q_odd = _mm512_slli_epi64::<32>(_mm512_srav_epi64(odd, t_odd));
        let q = _mm512_mask_blend_epi32(0xaaaa, q_even, q_odd);
        _mm512_srai_epi32::<1>(_mm512_add_epi32(q, _mm512_set1_epi32(1)))
    }
}

/// Two ymm of 8 row sums each (AVX-VNNI).
#[derive(Clone, Copy)]
struct VnniYmm([__m256i; 2]);

impl Acc for VnniYmm {
    type X = __m256i;
    type W = [__m256i; 2];
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn zero() -> Self {
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        Self(unsafe { [_mm256_setzero_si256(); 2] })
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn load_x(p: *const u8) -> __m256i {
        // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
        unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn load_w(p: *const i8) -> [__m256i; 2] {
        // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
        unsafe {
            [
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(32).cast()),
            ]
        }
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn step(self, x: __m256i, w: [__m256i; 2]) -> Self {
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        unsafe {
            Self([
                _mm256_dpbusd_avx_epi32(self.0[0], x, w[0]),
                _mm256_dpbusd_avx_epi32(self.0[1], x, w[1]),
            ])
        }
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn emit(self, l: &QDense<'_>, g: usize, s: usize, dst: &mut Dst<'_>) {
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        unsafe { emit256(self.0, l, g, s, dst) }
    }
}

/// Four ymm, each 4 rows × 2 partial sums (AVX2, `vpmaddwd` on i16-widened values: exact,
/// unlike `vpmaddubsw`, whose pair sums saturate at i16).
#[derive(Clone, Copy)]
struct Madd([__m256i; 4]);

impl Acc for Madd {
    type X = __m256i;
    type W = [__m256i; 4];
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn zero() -> Self {
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        Self(unsafe { [_mm256_setzero_si256(); 4] })
    }
    /// The 4 bytes as i16, repeated 4 times: one per row of a 4-row chunk.
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn load_x(p: *const u8) -> __m256i {
        // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
        unsafe { _mm256_cvtepu8_epi16(_mm_set1_epi32(p.cast::<i32>().read_unaligned())) }
    }
    /// The block as four chunks of 4 rows × 4 inputs, widened to i16.
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn load_w(p: *const i8) -> [__m256i; 4] {
        // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
        unsafe {
            [
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(16).cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(32).cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(48).cast())),
            ]
        }
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn step(self, x: __m256i, w: [__m256i; 4]) -> Self {
        let mut a = self.0;
        for c in 0..4 {
            // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
            a[c] = unsafe { _mm256_add_epi32(a[c], _mm256_madd_epi16(w[c], x)) };
        }
        Self(a)
    }
    #[inline(always)]
    // SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
    unsafe fn emit(self, l: &QDense<'_>, g: usize, s: usize, dst: &mut Dst<'_>) {
        // Lanes of chunk c: (row 4c, partial a), (4c, b), (4c+1, a), …; hadd pairs them as
        // rows [0 1 4 5 | 2 3 6 7], and the 64-bit permute puts them in order.
        let [a0, a1, a2, a3] = self.0;
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        let rows = unsafe {
            [
                _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(a0, a1)),
                _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(a2, a3)),
            ]
        };
        // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
        unsafe { emit256(rows, l, g, s, dst) }
    }
}

/// Requantizes and writes 16 row sums held in two ymm.
#[inline(always)]
// SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
unsafe fn emit256(v: [__m256i; 2], l: &QDense<'_>, g: usize, s: usize, dst: &mut Dst<'_>) {
    let o = g * GROUP;
    let mut out = [0i32; GROUP];
    for (h, v) in v.into_iter().enumerate() {
        // SAFETY: in bounds: the per-row constants hold whole groups.
        unsafe {
            let at = o + 8 * h;
            let r = requantize256(
                v,
                l.bias.as_ptr().add(at),
                l.multiplier.as_ptr().add(at),
                l.shift.as_ptr().add(at),
            );
            _mm256_storeu_si256(out.as_mut_ptr().add(8 * h).cast(), r);
        }
    }
    store(l, g, s, &out, dst);
}

/// [`requantize512`] on 8 lanes; AVX2 has no 64-bit arithmetic shift, so it is a logical
/// shift between two XORs with the sign.
#[inline(always)]
// SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
unsafe fn requantize256(acc: __m256i, b: *const i32, m: *const i32, sh: *const i32) -> __m256i {
    // SAFETY: reads the bytes the method's contract makes readable; this path's intrinsics.
    unsafe {
        let a = _mm256_add_epi32(acc, _mm256_loadu_si256(b.cast()));
        let m = _mm256_loadu_si256(m.cast());
        let t = _mm256_sub_epi32(_mm256_set1_epi32(30), _mm256_loadu_si256(sh.cast()));
        let even = _mm256_mul_epi32(a, m);
        let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(m));
        let t_even = _mm256_and_si256(t, _mm256_set1_epi64x(0xffff_ffff));
        let t_odd = _mm256_srli_epi64::<32>(t);
        let q_even = sra256(even, t_even);
        let q_odd = _mm256_slli_epi64::<32>(sra256(odd, t_odd));
        let q = _mm256_blend_epi32::<0b1010_1010>(q_even, q_odd);
        _mm256_srai_epi32::<1>(_mm256_add_epi32(q, _mm256_set1_epi32(1)))
    }
}

/// `p >> n` per 64-bit lane, arithmetic.
#[inline(always)]
// SAFETY (contract): only inside this path's `#[target_feature]` entry, with the pointers its caller vouches for.
unsafe fn sra256(p: __m256i, n: __m256i) -> __m256i {
    // SAFETY: this path's intrinsics, inside its `#[target_feature]` entry on a CPU that has them (`qdense` asserted it).
    unsafe {
        let sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
        _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(p, sign), n), sign)
    }
}

/// Writes the valid rows of group `g` of sample `s`: clamped to int8 (offset form) or as i32.
/// Scalar: 16 values per 64·IN multiply-adds.
#[inline(always)]
fn store(l: &QDense<'_>, g: usize, s: usize, r: &[i32; GROUP], dst: &mut Dst<'_>) {
    let o = g * GROUP;
    let n = GROUP.min(l.out - o);
    match dst {
        Dst::U8(y) => {
            let y = &mut y[s * stride(l.out) + o..][..n];
            for (y, &r) in y.iter_mut().zip(r) {
                *y = l.output.to_u8(r);
            }
        }
        Dst::I32(y) => y[s * l.out + o..][..n].copy_from_slice(&r[..n]),
    }
}
