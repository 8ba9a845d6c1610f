//! What makes a quantized network usable, checked once before any inference: the shapes, the
//! ranges that keep the kernels' integer arithmetic exact (see [`crate::kernels::int8`]), and
//! that consecutive layers agree on the activation scale between them.

use super::{INPUT_SCALE, INPUT_ZERO_POINT, MAX_WIDTH, QLayer};
use crate::kernels::int8::{MAX_BIAS, Output, packed_len, padded_rows, stride};
use core::fmt;

/// Why a quantized model cannot be used (the layer is counted from 0).
#[derive(Clone, Debug, PartialEq)]
pub enum QuantError {
    /// The network has another number of layers than expected.
    LayerCount {
        /// Layers expected.
        expected: usize,
        /// Layers found.
        found: usize,
    },
    /// A layer's shape differs from the expected one.
    Shape {
        /// Layer.
        layer: usize,
        /// Expected (inputs, outputs).
        expected: (usize, usize),
        /// Found (inputs, outputs).
        found: (usize, usize),
    },
    /// A layer is wider than [`MAX_WIDTH`].
    TooWide {
        /// Layer.
        layer: usize,
    },
    /// A tensor holds the wrong number of values.
    Length {
        /// Layer.
        layer: usize,
        /// Tensor.
        tensor: &'static str,
        /// Values expected.
        expected: usize,
        /// Values found.
        found: usize,
    },
    /// A weight is −128 (weights are symmetric, −127..=127) or the packing's padding is not
    /// zero.
    Weight {
        /// Layer.
        layer: usize,
        /// Index in the packed weights.
        index: usize,
        /// The value.
        value: i8,
    },
    /// A value is out of its range.
    Range {
        /// Layer.
        layer: usize,
        /// Tensor.
        tensor: &'static str,
        /// Row.
        row: usize,
        /// The value.
        value: i64,
    },
    /// A scale is not a positive finite number.
    Scale {
        /// Layer.
        layer: usize,
        /// Which scale.
        tensor: &'static str,
    },
    /// The kernel bias is not the bias with the input zero point folded in.
    KernelBias {
        /// Layer.
        layer: usize,
        /// Row.
        row: usize,
    },
    /// The first layer's input is not the image (scale 1/255, zero point −128).
    Input,
    /// A layer's input scale or zero point differs from the previous layer's output.
    Chain {
        /// Layer.
        layer: usize,
    },
    /// A hidden layer does not output int8 with a folded ReLU, or the last does not output
    /// i32 logits.
    OutputKind {
        /// Layer.
        layer: usize,
    },
    /// A raw blob problem.
    Blob(super::raw::BlobError),
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantError::LayerCount { expected, found } => {
                write!(f, "{found} layers; the network has {expected}")
            }
            QuantError::Shape {
                layer,
                expected,
                found,
            } => write!(
                f,
                "layer {layer} is {}→{}, the network needs {}→{}",
                found.0, found.1, expected.0, expected.1
            ),
            QuantError::TooWide { layer } => {
                write!(f, "layer {layer} is wider than {MAX_WIDTH}")
            }
            QuantError::Length {
                layer,
                tensor,
                expected,
                found,
            } => write!(
                f,
                "layer {layer}: {tensor} holds {found} values, not {expected}"
            ),
            QuantError::Weight {
                layer,
                index,
                value,
            } => write!(
                f,
                "layer {layer}: packed weight {index} is {value} (weights are −127..=127, padding 0)"
            ),
            QuantError::Range {
                layer,
                tensor,
                row,
                value,
            } => write!(
                f,
                "layer {layer}: {tensor}[{row}] = {value} is out of range"
            ),
            QuantError::Scale { layer, tensor } => {
                write!(f, "layer {layer}: {tensor} is not a positive finite number")
            }
            QuantError::KernelBias { layer, row } => write!(
                f,
                "layer {layer}: kernel bias of row {row} does not match the bias and weights"
            ),
            QuantError::Input => write!(
                f,
                "the first layer's input is not the image (scale 1/255, zero point −128)"
            ),
            QuantError::Chain { layer } => write!(
                f,
                "layer {layer}: input scale or zero point differs from the previous layer's output"
            ),
            QuantError::OutputKind { layer } => write!(
                f,
                "layer {layer}: hidden layers output int8 with ReLU, the last i32 logits"
            ),
            QuantError::Blob(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for QuantError {}

/// Checks `layers` against the widths `dims` (input first) and every rule of the module docs.
pub fn check(layers: &[QLayer<'_>], dims: &[usize]) -> Result<(), QuantError> {
    if dims.len() != layers.len() + 1 {
        return Err(QuantError::LayerCount {
            expected: dims.len().saturating_sub(1),
            found: layers.len(),
        });
    }
    for (i, l) in layers.iter().enumerate() {
        let expected = (dims[i], dims[i + 1]);
        if (l.inp, l.out) != expected {
            return Err(QuantError::Shape {
                layer: i,
                expected,
                found: (l.inp, l.out),
            });
        }
        check_layer(i, l)?;
        let hidden = matches!(l.output, Output::Int8 { relu: true, .. });
        let last = i + 1 == layers.len();
        if (last && l.output != Output::Int32) || (!last && !hidden) {
            return Err(QuantError::OutputKind { layer: i });
        }
        let chained = match i {
            0 => l.input_scale == INPUT_SCALE && l.input_zero_point == INPUT_ZERO_POINT,
            _ => {
                let p = &layers[i - 1];
                p.output_scale == l.input_scale
                    && p.output
                        == (Output::Int8 {
                            zero_point: l.input_zero_point,
                            relu: true,
                        })
            }
        };
        if !chained {
            return Err(if i == 0 {
                QuantError::Input
            } else {
                QuantError::Chain { layer: i }
            });
        }
    }
    Ok(())
}

/// One layer's lengths, ranges and kernel bias.
fn check_layer(i: usize, l: &QLayer<'_>) -> Result<(), QuantError> {
    if l.inp == 0 || l.out == 0 || l.inp > MAX_WIDTH || l.out > MAX_WIDTH {
        return Err(QuantError::TooWide { layer: i });
    }
    check_lengths(i, l)?;
    check_weights(i, l)?;
    check_zero_points_and_scales(i, l)?;
    check_rows(i, l)
}

/// A `Range` error unless `ok`.
fn in_range(
    layer: usize,
    tensor: &'static str,
    row: usize,
    value: i64,
    ok: bool,
) -> Result<(), QuantError> {
    if ok {
        Ok(())
    } else {
        Err(QuantError::Range {
            layer,
            tensor,
            row,
            value,
        })
    }
}

/// `Err(Length)` unless tensor `tensor` of layer `layer` holds the `expected` values.
pub(super) fn length(
    layer: usize,
    tensor: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), QuantError> {
    if expected == found {
        Ok(())
    } else {
        Err(QuantError::Length {
            layer,
            tensor,
            expected,
            found,
        })
    }
}

/// Every tensor has its packed length.
fn check_lengths(i: usize, l: &QLayer<'_>) -> Result<(), QuantError> {
    let rows = padded_rows(l.out);
    let length = |tensor, expected, found| length(i, tensor, expected, found);
    length("weights", packed_len(l.out, l.inp), l.weights.len())?;
    length("bias", rows, l.bias.len())?;
    length("kernel bias", rows, l.kernel_bias.len())?;
    length("multiplier", rows, l.multiplier.len())?;
    length("shift", rows, l.shift.len())?;
    length("weight scale", rows, l.weight_scale.len())
}

/// Zero points are int8 values; the input and output scales are finite and positive.
fn check_zero_points_and_scales(i: usize, l: &QLayer<'_>) -> Result<(), QuantError> {
    let zp_in = l.input_zero_point;
    let int8 = |zp: i32| (-128..=127).contains(&zp);
    in_range(i, "input zero point", 0, zp_in.into(), int8(zp_in))?;
    if let Output::Int8 { zero_point, .. } = l.output {
        in_range(
            i,
            "output zero point",
            0,
            zero_point.into(),
            int8(zero_point),
        )?;
    }
    for (name, s) in [
        ("input scale", l.input_scale),
        ("output scale", l.output_scale),
    ] {
        if !(s.is_finite() && s > 0.0) {
            return Err(QuantError::Scale {
                layer: i,
                tensor: name,
            });
        }
    }
    Ok(())
}

/// Each row's bias, multiplier, shift and weight scale are in range, and its kernel bias is
/// the bias with the zero points folded in.
fn check_rows(i: usize, l: &QLayer<'_>) -> Result<(), QuantError> {
    let zp_in = l.input_zero_point;
    for o in 0..l.out {
        let bias = l.bias[o];
        in_range(i, "bias", o, bias.into(), bias.abs() <= MAX_BIAS)?;
        let m = l.multiplier[o];
        in_range(i, "multiplier", o, m.into(), m >= 0)?;
        let s = l.shift[o];
        in_range(i, "shift", o, s.into(), (-31..=0).contains(&s))?;
        let ws = l.weight_scale[o];
        if !(ws.is_finite() && ws > 0.0) {
            return Err(QuantError::Scale {
                layer: i,
                tensor: "weight scale",
            });
        }
        let sum: i64 = (0..l.inp).map(|k| i64::from(l.weight(o, k))).sum();
        let folded = i64::from(bias) - (i64::from(zp_in) + 128) * sum;
        if i64::from(l.kernel_bias[o]) != folded {
            return Err(QuantError::KernelBias { layer: i, row: o });
        }
    }
    // Rows past OUT: the kernels load them as whole groups; any value is harmless, but the
    // shift must stay in range for the 64-bit shifts to mean what they say.
    for o in l.out..padded_rows(l.out) {
        let s = l.shift[o];
        in_range(i, "shift", o, s.into(), (-31..=0).contains(&s))?;
    }
    Ok(())
}

/// Weights are −127..=127, and zero wherever the packing pads (rows past OUT, inputs past IN).
fn check_weights(i: usize, l: &QLayer<'_>) -> Result<(), QuantError> {
    let sx = stride(l.inp);
    for (index, &value) in l.weights.iter().enumerate() {
        let block = index / 64;
        let quads = sx / 4;
        let row = (block / quads) * 16 + (index % 64) / 4;
        let col = (block % quads) * 4 + index % 4;
        let padding = row >= l.out || col >= l.inp;
        if value == -128 || (padding && value != 0) {
            return Err(QuantError::Weight {
                layer: i,
                index,
                value,
            });
        }
    }
    Ok(())
}
