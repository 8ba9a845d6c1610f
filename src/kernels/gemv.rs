//! Matrix–vector products for single-sample inference.
//!
//! Plain algorithm: `y[i] = Σ_p A[i][p]·x[p]`, one dot product per row.
//!
//! A single sample has no reuse of A, so the product streams the weights once and is bound by
//! memory bandwidth, not FMAs; what matters is that little else happens. Rows go LANES at a
//! time, each with one accumulator (LANES independent FMA chains), so every loaded vector of x
//! serves LANES rows and the loads of A are LANES sequential streams. Each accumulator is then
//! summed across its lanes into one lane of a result vector: bias, activation and the store
//! happen once per LANES rows. A row tail shorter than a vector is zero-padded. The weights
//! are read through pointers into rows whose length is checked once per group of rows: the
//! bounds checks of slice indexing cost about half the speed on targets with fewer registers
//! (wasm32).

use super::ops::{DenseForwardOne, Gemv};
use super::simd::{MAX_LANES, Vector};
use super::{Activation, Mode};

/// `y (mode)= A·x` (see [`Gemv`]).
#[inline(always)]
pub(crate) fn gemv<V: Vector>(op: Gemv<'_>) {
    let Gemv {
        m,
        k,
        a,
        x,
        y,
        mode,
    } = op;
    rows_times_x::<V>(m, k, a, x, Store { y, mode });
}

/// `y = act(W·x + bias)` for one sample (see [`DenseForwardOne`]).
#[inline(always)]
pub(crate) fn dense_forward_one<V: Vector>(op: DenseForwardOne<'_>) {
    let DenseForwardOne {
        out,
        inp,
        w,
        bias,
        x,
        y,
        act,
    } = op;
    rows_times_x::<V>(out, inp, w, x, BiasActivation { y, bias, act });
}

/// What happens to each group of dot products (a trait, not a closure: see
/// [`super::tile`]).
trait Emit<V> {
    /// Rows `i0..i0 + rows`, lane r of `dots` holding row `i0 + r`'s dot product.
    fn emit(&mut self, i0: usize, rows: usize, dots: V);
}

struct Store<'a> {
    y: &'a mut [f32],
    mode: Mode,
}

impl<V: Vector> Emit<V> for Store<'_> {
    #[inline(always)]
    fn emit(&mut self, i0: usize, rows: usize, dots: V) {
        let y = &mut self.y[i0..i0 + rows];
        let value = match self.mode {
            Mode::Overwrite => dots,
            Mode::Accumulate => dots + V::load_partial(y),
        };
        value.store_partial(y);
    }
}

struct BiasActivation<'a> {
    y: &'a mut [f32],
    bias: &'a [f32],
    act: Activation,
}

impl<V: Vector> Emit<V> for BiasActivation<'_> {
    #[inline(always)]
    fn emit(&mut self, o0: usize, rows: usize, dots: V) {
        let z = dots + V::load_partial(&self.bias[o0..o0 + rows]);
        let value = match self.act {
            Activation::Identity => z,
            Activation::Relu => z.relu(),
        };
        value.store_partial(&mut self.y[o0..o0 + rows]);
    }
}

/// Hands every group of `rows <= LANES` rows starting at row i0 to `out`, lane r of the dots
/// holding `A[i0 + r]·x`. The caller has checked the lengths.
#[inline(always)]
fn rows_times_x<V: Vector>(m: usize, k: usize, a: &[f32], x: &[f32], mut out: impl Emit<V>) {
    let lanes = V::LANES;
    let whole = k - k % lanes;
    let x_last = V::load_partial(&x[whole..]);
    for i0 in (0..m).step_by(lanes) {
        let rows = lanes.min(m - i0);
        // A partial group repeats its last row; the extra dot products are dropped.
        let row = |r: usize| &a[(i0 + r.min(rows - 1)) * k..][..k];
        let mut starts = [core::ptr::null::<f32>(); MAX_LANES];
        for (r, start) in starts.iter_mut().enumerate().take(lanes) {
            *start = row(r).as_ptr();
        }
        let mut acc = [V::zero(); MAX_LANES];
        for p in (0..whole).step_by(lanes) {
            let xv = V::load(&x[p..]);
            for (r, acc) in acc.iter_mut().enumerate().take(lanes) {
                // SAFETY: row r is `k` floats long (sliced above) and p + LANES <= whole <= k.
                let w = unsafe { V::load_ptr(starts[r].add(p)) };
                *acc = w.mul_add(xv, *acc);
            }
        }
        if whole < k {
            for (r, acc) in acc.iter_mut().enumerate().take(lanes) {
                *acc = V::load_partial(&row(r)[whole..]).mul_add(x_last, *acc);
            }
        }
        let mut dots = [0.0; MAX_LANES];
        for (d, acc) in dots.iter_mut().zip(&acc).take(lanes) {
            *d = acc.reduce_add();
        }
        out.emit(i0, rows, V::load(&dots));
    }
}
