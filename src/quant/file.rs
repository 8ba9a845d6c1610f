//! int8 model files (std): safetensors with int8/int32 tensors and the scales, and the raw
//! blob of [`super::raw`], both loaded into a checked [`QuantModel`].
//!
//! Tensors of layer `i` (1-based, as the f32 files name them), natural order:
//!
//! | name | dtype | shape |
//! | --- | --- | --- |
//! | `fc{i}.weight` | I8 | `[out, in]` |
//! | `fc{i}.bias`, `fc{i}.multiplier`, `fc{i}.shift` | I32 | `[out]` |
//! | `fc{i}.weight_scale` | F32 | `[out]` |
//! | `fc{i}.input_scale`, `fc{i}.output_scale` | F32 | `[1]` |
//! | `fc{i}.input_zero_point`, `fc{i}.output_zero_point` | I32 | `[1]` |
//!
//! Hidden layers output int8 with the ReLU folded in, the last layer i32 logits (its output
//! zero point is 0). `__metadata__` holds [`FORMAT_KEY`] = `"1"`, which tells the commands an
//! int8 file from a f32 one, and the checksums every constnet safetensors file carries.

use super::raw;
use super::{LayerParams, QLayer, QuantModel};
use crate::atomic_file::write_bytes_atomic;
use crate::format::safetensors::{
    Decoded, Dtype, TypedEntry, decode, encode_typed, open, typed_tensor,
};
use crate::format::{ModelFileError, Problem};
use crate::kernels::int8::Output;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::prelude::rust_2024::*;

/// The `__metadata__` key that marks an int8 model file (value `"1"`, the layout version).
pub const FORMAT_KEY: &str = "constnet.int8";

/// The bytes of `model`'s safetensors file.
pub fn to_bytes<const L: usize>(model: &QuantModel<L>) -> Result<Vec<u8>, Problem> {
    let mut entries = Vec::new();
    for (i, p) in model.params().iter().enumerate() {
        let name = |t: &str| format!("fc{}.{t}", i + 1);
        let le = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let lef = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let zp_out = match p.output {
            Output::Int8 { zero_point, .. } => zero_point,
            Output::Int32 => 0,
        };
        let mut push = |t: &str, dtype, shape: Vec<usize>, bytes| {
            entries.push(TypedEntry {
                name: name(t),
                dtype,
                shape,
                bytes,
            })
        };
        push(
            "weight",
            Dtype::I8,
            vec![p.out, p.inp],
            p.weights.iter().map(|&w| w as u8).collect(),
        );
        push("bias", Dtype::I32, vec![p.out], le(&p.bias));
        push("multiplier", Dtype::I32, vec![p.out], le(&p.multiplier));
        push("shift", Dtype::I32, vec![p.out], le(&p.shift));
        push(
            "weight_scale",
            Dtype::F32,
            vec![p.out],
            lef(&p.weight_scale),
        );
        push("input_scale", Dtype::F32, vec![1], lef(&[p.input_scale]));
        push("output_scale", Dtype::F32, vec![1], lef(&[p.output_scale]));
        push(
            "input_zero_point",
            Dtype::I32,
            vec![1],
            le(&[p.input_zero_point]),
        );
        push("output_zero_point", Dtype::I32, vec![1], le(&[zp_out]));
    }
    let metadata = HashMap::from([(FORMAT_KEY.to_string(), "1".to_string())]);
    encode_typed(&entries, metadata)
}

/// Saves `model` to `path` as safetensors, atomically.
pub fn save<const L: usize>(path: &Path, model: &QuantModel<L>) -> Result<(), ModelFileError> {
    let at = |problem| ModelFileError::new(path, problem);
    let bytes = to_bytes(model).map_err(at)?;
    write_bytes_atomic(path, &bytes).map_err(|e| at(Problem::Io(e)))
}

/// Saves `model` to `path` as a raw blob ([`super::raw`]), atomically.
pub fn save_raw<const L: usize>(path: &Path, model: &QuantModel<L>) -> Result<(), ModelFileError> {
    let mut bytes = Vec::new();
    raw::write(&model.view(), |b| bytes.extend_from_slice(b));
    write_bytes_atomic(path, &bytes).map_err(|e| ModelFileError::new(path, Problem::Io(e)))
}

/// Whether `path` holds an int8 model: the int8 blob's magic, or safetensors whose metadata
/// has [`FORMAT_KEY`] (false when it cannot be read: the f32 loader then says why).
pub fn is_int8(path: &Path) -> bool {
    // Only a regular file is opened: opening a FIFO would block.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 8];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.read_exact(&mut head).is_err() {
        return false;
    }
    if head == raw::MAGIC {
        return true;
    }
    let Ok(n) = usize::try_from(u64::from_le_bytes(head)) else {
        return false;
    };
    let mut header = vec![0u8; n.min(1 << 20)];
    if file.read_exact(&mut header).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| h.get("__metadata__")?.get(FORMAT_KEY).cloned())
        .is_some()
}

/// Loads an int8 model file of either form, checked against the widths `dims`.
pub fn load<const L: usize>(path: &Path, dims: &[usize]) -> Result<QuantModel<L>, ModelFileError> {
    let bytes = open(path, max_file_len(dims))?;
    from_bytes(&bytes, dims).map_err(|problem| ModelFileError::new(path, problem))
}

/// The most bytes [`load`] reads for layers of widths `dims`: the int8 weights, the i32 biases
/// and the per-channel scales with room to spare, and a header.
fn max_file_len(dims: &[usize]) -> u64 {
    let weights: u64 = dims.windows(2).map(|w| (w[0] * w[1]) as u64).sum();
    let per_channel: u64 = dims.iter().map(|&d| d as u64).sum();
    2 * weights + 32 * per_channel + crate::format::safetensors::MAX_HEADER
}

/// [`load`] from bytes.
pub fn from_bytes<const L: usize>(bytes: &[u8], dims: &[usize]) -> Result<QuantModel<L>, Problem> {
    if bytes.starts_with(&raw::MAGIC) {
        // The view needs 4-byte alignment; a copy into u32s guarantees it.
        let mut words = vec![0u32; bytes.len().div_ceil(4)];
        let aligned = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()];
        aligned.copy_from_slice(bytes);
        let net = raw::view::<L>(aligned, dims).map_err(Problem::Quant)?;
        let params = net.layers().iter().map(LayerParams::from_layer).collect();
        return QuantModel::from_params(params, dims).map_err(Problem::Quant);
    }
    let decoded = decode(bytes)?;
    if decoded.metadata.get(FORMAT_KEY).map(String::as_str) != Some("1") {
        return Err(Problem::Parse(format!(
            "not an int8 model file (no {FORMAT_KEY:?} = \"1\" in its metadata)"
        )));
    }
    let mut params = Vec::with_capacity(L);
    for l in 0..L {
        params.push(layer(&decoded, l, dims[l], dims[l + 1], l + 1 == L)?);
    }
    let mut names = decoded.tensors.names();
    names.sort_unstable();
    let known = |n: &str| {
        (1..=L).any(|i| {
            n.strip_prefix(&format!("fc{i}.")).is_some_and(|t| {
                [
                    "weight",
                    "bias",
                    "multiplier",
                    "shift",
                    "weight_scale",
                    "input_scale",
                    "output_scale",
                    "input_zero_point",
                    "output_zero_point",
                ]
                .contains(&t)
            })
        })
    };
    if let Some(extra) = names.into_iter().find(|n| !known(n)) {
        return Err(Problem::UnexpectedTensor(extra.to_string()));
    }
    QuantModel::from_params(params, dims).map_err(Problem::Quant)
}

/// Layer `l`'s tensors.
fn layer(
    d: &Decoded<'_>,
    l: usize,
    inp: usize,
    out: usize,
    last: bool,
) -> Result<LayerParams, Problem> {
    let name = |t: &str| format!("fc{}.{t}", l + 1);
    let i32s = |t: &str, len: usize| -> Result<Vec<i32>, Problem> {
        let b = tensor(d, &name(t), Dtype::I32, &[len])?;
        Ok(b.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let f32s = |t: &str, len: usize| -> Result<Vec<f32>, Problem> {
        let b = tensor(d, &name(t), Dtype::F32, &[len])?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let weights = tensor(d, &name("weight"), Dtype::I8, &[out, inp])?
        .iter()
        .map(|&b| b as i8)
        .collect();
    let zp_out = i32s("output_zero_point", 1)?[0];
    Ok(LayerParams {
        inp,
        out,
        weights,
        bias: i32s("bias", out)?,
        multiplier: i32s("multiplier", out)?,
        shift: i32s("shift", out)?,
        weight_scale: f32s("weight_scale", out)?,
        input_scale: f32s("input_scale", 1)?[0],
        input_zero_point: i32s("input_zero_point", 1)?[0],
        output_scale: f32s("output_scale", 1)?[0],
        output: match last {
            true => Output::Int32,
            false => Output::Int8 {
                zero_point: zp_out,
                relu: true,
            },
        },
    })
}

/// The bytes of tensor `name`, which must have `dtype` and `shape`.
fn tensor<'a>(
    d: &Decoded<'a>,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<&'a [u8], Problem> {
    typed_tensor(d, name, dtype, shape, |found| Problem::DtypeOf {
        name: name.to_string(),
        expected: match dtype {
            Dtype::I8 => "I8",
            Dtype::I32 => "I32",
            _ => "F32",
        },
        found,
    })
}

impl LayerParams {
    /// A checked layer back in natural order (for a blob read into a [`QuantModel`]).
    pub fn from_layer(l: &QLayer<'_>) -> Self {
        let mut weights = Vec::with_capacity(l.out * l.inp);
        for o in 0..l.out {
            weights.extend((0..l.inp).map(|k| l.weight(o, k)));
        }
        Self {
            inp: l.inp,
            out: l.out,
            weights,
            bias: l.bias[..l.out].to_vec(),
            multiplier: l.multiplier[..l.out].to_vec(),
            shift: l.shift[..l.out].to_vec(),
            weight_scale: l.weight_scale[..l.out].to_vec(),
            input_scale: l.input_scale,
            input_zero_point: l.input_zero_point,
            output_scale: l.output_scale,
            output: l.output,
        }
    }
}
