//! The specification of the int8 network: TFLite's `fully_connected` (int8, per-channel
//! weights) as plain loops over signed activations and zero points, with no packing tricks,
//! no folded bias and no SIMD. Every kernel path must give exactly these numbers.

use super::{MAX_WIDTH, QLayer, QuantNet};
use crate::kernels::int8::{Output, requantize};

/// Where a layer writes.
pub enum Out<'a> {
    /// int8 activations `[out]`.
    Int8(&'a mut [i8]),
    /// i32 logits `[out]`.
    Int32(&'a mut [i32]),
}

/// One layer on one sample: for each output row `o`,
/// `acc = bias[o] + Σ_k w[o][k]·(x[k] − zp_in)`, `r = requantize(acc, multiplier[o],
/// shift[o])`, then `clamp(r + zp_out, lo, 127)` (lo = zp_out with the ReLU, else −128) or
/// `r` as an i32 logit.
pub fn layer(l: &QLayer<'_>, x: &[i8], y: Out<'_>) {
    assert_eq!(x.len(), l.inp, "reference::layer: x");
    let mut y = y;
    for o in 0..l.out {
        let mut acc = l.bias[o];
        for (k, &x) in x.iter().enumerate() {
            acc += i32::from(l.weight(o, k)) * (i32::from(x) - l.input_zero_point);
        }
        let r = requantize(acc, l.multiplier[o], l.shift[o]);
        match (&mut y, l.output) {
            (Out::Int8(y), Output::Int8 { zero_point, .. }) => {
                y[o] = (r + zero_point).clamp(l.output.low(), 127) as i8;
            }
            (Out::Int32(y), Output::Int32) => y[o] = r,
            _ => panic!("reference::layer: the destination does not match the output kind"),
        }
    }
}

/// The logits of one image (`pixels` `[inputs]`, `logits` `[classes]`): pixel `p` enters as
/// `x_q = p − 128`, then the layers in order.
pub fn forward_one<const L: usize>(net: &QuantNet<'_, L>, pixels: &[u8], logits: &mut [i32]) {
    let mut a = [0i8; MAX_WIDTH];
    let mut b = [0i8; MAX_WIDTH];
    for (a, &p) in a.iter_mut().zip(pixels) {
        *a = (i32::from(p) - 128) as i8;
    }
    for (i, l) in net.layers().iter().enumerate() {
        if i + 1 == L {
            layer(l, &a[..l.inp], Out::Int32(logits));
        } else {
            layer(l, &a[..l.inp], Out::Int8(&mut b[..l.out]));
            core::mem::swap(&mut a, &mut b);
        }
    }
}
