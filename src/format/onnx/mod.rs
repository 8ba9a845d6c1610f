//! ONNX export: a network as a standard ONNX model, for deployment runtimes (onnxruntime,
//! tract, …).
//!
//! The graph takes [`INPUT_NAME`], float `[N, INPUT]` with `N` a symbolic batch size (the
//! rows constnet feeds the network: pixels scaled by 1/255), and gives [`OUTPUT_NAME`], float
//! `[N, OUTPUT]`. Each dense layer is one `Gemm` (`Y = X·Wᵀ + b`, `transB = 1`, the weight
//! stored `[OUT, IN]` as PyTorch's `nn.Linear` stores it), followed by a `Relu` except after
//! the last layer. The weights are initializers named as in the safetensors file
//! (`fc1.weight`, `fc1.bias`, …), little-endian f32 in `raw_data`. IR version 8 with opset 17
//! (ONNX 1.12, 2022), which every current runtime reads.
//!
//! The network's tensors are walked as [`super::safetensors`] walks them, so any network
//! [`network!`](crate::network) declares exports; tensors that are not a chain of dense
//! layers are refused with [`OnnxError`]. The messages ([`proto`]) are encoded by prost.

pub mod proto;

/// The protobuf crate the messages are derived with: `use
/// constnet::format::onnx::prost::Message` to encode or decode them.
pub use prost;

use super::{ModelFileError, Problem};
use crate::atomic_file::write_bytes_atomic;
use crate::model::{Network, TensorInfo};
use prost::Message;
use proto::*;
use std::fmt;
use std::path::Path;
use std::prelude::rust_2024::*;

/// The ONNX IR version written.
pub const IR_VERSION: i64 = 8;
/// The version of the standard operator set written (`Gemm` 13, `Relu` 14 under it).
pub const OPSET: i64 = 17;
/// The graph's input.
pub const INPUT_NAME: &str = "input";
/// The graph's output.
pub const OUTPUT_NAME: &str = "logits";
/// The symbolic batch dimension of the input and output.
pub const BATCH_DIM: &str = "N";
/// The most bytes a protobuf message may have (2 GiB − 1); larger models would need ONNX's
/// external data files, which this writer does not produce.
pub const MAX_BYTES: usize = i32::MAX as usize;

/// Why a network cannot be exported to ONNX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnnxError {
    /// Its tensors are not a chain of dense layers: a layer kind the exporter does not handle.
    Unsupported {
        /// The first tensor that does not fit.
        tensor: &'static str,
        /// What was expected of it.
        expected: String,
    },
    /// The model would exceed protobuf's 2 GiB limit.
    TooLarge {
        /// Bytes of weights and biases.
        bytes: usize,
    },
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnnxError::Unsupported { tensor, expected } => write!(
                f,
                "cannot export to ONNX: tensor {tensor:?} is not {expected} (the ONNX export \
                 handles chains of dense layers, NAME.weight [OUT, IN] and NAME.bias [OUT], \
                 with ReLU between them)"
            ),
            OnnxError::TooLarge { bytes } => write!(
                f,
                "cannot export to ONNX: {bytes} bytes of parameters exceed protobuf's 2 GiB limit"
            ),
        }
    }
}

impl std::error::Error for OnnxError {}

/// One dense layer as the walk over the tensors finds it.
struct Layer {
    /// `fc1` for `fc1.weight` and `fc1.bias`.
    name: &'static str,
    weight: TensorInfo,
    bias: TensorInfo,
}

/// The dense layers `tensors` hold (a network's, in order), checked to chain from `input` to
/// `output` features.
fn layers(tensors: &[TensorInfo], input: usize, output: usize) -> Result<Vec<Layer>, OnnxError> {
    let unsupported = |tensor, expected: String| OnnxError::Unsupported { tensor, expected };
    let mut layers = Vec::new();
    let mut width = input;
    for pair in tensors.chunks(2) {
        let weight = pair[0];
        let name = match (weight.name.strip_suffix(".weight"), weight.shape) {
            (Some(name), &[_, inputs]) if inputs == width => name,
            _ => {
                let expected = format!("a weight NAME.weight of shape [OUT, {width}]");
                return Err(unsupported(weight.name, expected));
            }
        };
        let expected = format!("the bias {name}.bias of shape [{}]", weight.shape[0]);
        let Some(&bias) = pair.get(1) else {
            return Err(unsupported(weight.name, format!("followed by {expected}")));
        };
        if bias.name.strip_suffix(".bias") != Some(name) || bias.shape != [weight.shape[0]] {
            return Err(unsupported(bias.name, expected));
        }
        width = weight.shape[0];
        layers.push(Layer { name, weight, bias });
    }
    if layers.is_empty() || width != output {
        let last = layers.last().map_or("", |l| l.weight.name);
        let expected = format!("the last layer's weight, of shape [{output}, IN]");
        return Err(unsupported(last, expected));
    }
    Ok(layers)
}

/// The network as an ONNX model.
pub fn model<N: Network>(net: &N) -> Result<ModelProto, OnnxError> {
    let tensors: Vec<TensorInfo> = (0..N::TENSORS).map(N::tensor_info).collect();
    let layers = layers(&tensors, N::INPUT, N::OUTPUT)?;
    let bytes = 4 * N::PARAMS;
    // A megabyte left for the graph's names, shapes and framing.
    if bytes > MAX_BYTES - (1 << 20) {
        return Err(OnnxError::TooLarge { bytes });
    }
    let mut node = Vec::with_capacity(2 * layers.len());
    let mut x = INPUT_NAME.to_string();
    for (l, layer) in layers.iter().enumerate() {
        let last = l + 1 == layers.len();
        let y = if last {
            OUTPUT_NAME.to_string()
        } else {
            format!("{}.gemm", layer.name)
        };
        node.push(gemm(layer, &x, &y));
        x = y;
        if !last {
            let y = format!("{}.relu", layer.name);
            node.push(relu(layer.name, &x, &y));
            x = y;
        }
    }
    let initializer = (tensors.iter().enumerate())
        .map(|(i, &info)| initializer(info, net.tensor(i)))
        .collect();
    let mut widths = vec![N::INPUT.to_string()];
    widths.extend(layers.iter().map(|l| l.weight.shape[0].to_string()));
    let graph = GraphProto {
        node,
        name: Some("constnet".into()),
        initializer,
        doc_string: Some(format!(
            "An MLP {}, ReLU between the layers. Input: one row per sample (for MNIST, an \
             image's pixels / 255); output: the logits.",
            widths.join("→")
        )),
        input: vec![value_info(INPUT_NAME, N::INPUT)],
        output: vec![value_info(OUTPUT_NAME, N::OUTPUT)],
        value_info: Vec::new(),
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("constnet".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..ModelProto::default()
    })
}

/// `y = x·Wᵀ + b` for a layer.
fn gemm(layer: &Layer, x: &str, y: &str) -> NodeProto {
    NodeProto {
        input: vec![x.into(), layer.weight.name.into(), layer.bias.name.into()],
        output: vec![y.into()],
        name: Some(format!("{}.Gemm", layer.name)),
        op_type: Some("Gemm".into()),
        domain: Some(String::new()),
        attribute: vec![AttributeProto {
            name: Some("transB".into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(1),
            ..AttributeProto::default()
        }],
        doc_string: None,
    }
}

/// `y = max(x, 0)` after a layer.
fn relu(layer: &str, x: &str, y: &str) -> NodeProto {
    NodeProto {
        input: vec![x.into()],
        output: vec![y.into()],
        name: Some(format!("{layer}.Relu")),
        op_type: Some("Relu".into()),
        domain: Some(String::new()),
        attribute: Vec::new(),
        doc_string: None,
    }
}

/// A parameter tensor as a constant, little-endian f32.
fn initializer(info: TensorInfo, values: &[f32]) -> TensorProto {
    TensorProto {
        dims: info.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(FLOAT),
        name: Some(info.name.into()),
        raw_data: Some(values.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}

/// A float tensor `[N, width]` named `name`.
fn value_info(name: &str, width: usize) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        denotation: None,
    };
    let shape = TensorShapeProto {
        dim: vec![
            dim(DimensionValue::DimParam(BATCH_DIM.into())),
            dim(DimensionValue::DimValue(width as i64)),
        ],
    };
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorTypeProto {
                elem_type: Some(FLOAT),
                shape: Some(shape),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}

/// The bytes of the network's ONNX model.
pub fn to_bytes<N: Network>(net: &N) -> Result<Vec<u8>, OnnxError> {
    Ok(model(net)?.encode_to_vec())
}

/// Writes the network as an ONNX model to `path`, atomically.
pub fn save<N: Network>(path: &Path, net: &N) -> Result<(), ModelFileError> {
    let at = |problem| ModelFileError::new(path, problem);
    let bytes = to_bytes(net).map_err(|e| at(Problem::Onnx(e)))?;
    write_bytes_atomic(path, &bytes).map_err(|e| at(Problem::Io(e)))
}

#[cfg(test)]
mod tests {
    use super::{OnnxError, TensorInfo, layers};
    use std::panic;
    use std::prelude::rust_2024::*;

    fn info(name: &'static str, shape: &'static [usize]) -> TensorInfo {
        TensorInfo {
            name,
            shape,
            offset: 0,
        }
    }

    #[test]
    fn a_chain_of_dense_layers_is_found() {
        let tensors = [
            info("fc1.weight", &[3, 5]),
            info("fc1.bias", &[3]),
            info("head.weight", &[2, 3]),
            info("head.bias", &[2]),
        ];
        let found = layers(&tensors, 5, 2).unwrap();
        let names: Vec<&str> = found.iter().map(|l| l.name).collect();
        assert_eq!(names, ["fc1", "head"]);
        assert_eq!(found[1].weight.shape, [2, 3]);
        assert_eq!(found[1].bias.name, "head.bias");
    }

    /// Tensors that are not dense layers (another layer kind) are refused, naming the first
    /// that does not fit.
    #[test]
    fn other_layer_kinds_are_refused() {
        let w = info("fc1.weight", &[3, 5]);
        let b = info("fc1.bias", &[3]);
        let cases: [(&str, &[TensorInfo], usize, &str, &str); 7] = [
            (
                "a convolution",
                &[info("conv.weight", &[3, 1, 2, 2]), b],
                5,
                "conv.weight",
                "[OUT, 5]",
            ),
            (
                "a norm's scale",
                &[w, b, info("norm.scale", &[3])],
                3,
                "norm.scale",
                "NAME.weight",
            ),
            (
                "no bias",
                &[w],
                3,
                "fc1.weight",
                "followed by the bias fc1.bias of shape [3]",
            ),
            (
                "another layer's bias",
                &[w, info("fc2.bias", &[3])],
                3,
                "fc2.bias",
                "fc1.bias",
            ),
            (
                "a bias of another width",
                &[w, info("fc1.bias", &[4])],
                3,
                "fc1.bias",
                "[3]",
            ),
            (
                "widths that do not chain",
                &[w, b, w, b],
                3,
                "fc1.weight",
                "[OUT, 3]",
            ),
            ("another output width", &[w, b], 4, "fc1.weight", "[4, IN]"),
        ];
        for (case, tensors, output, tensor, expected) in cases {
            let e = layers(tensors, 5, output)
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            let OnnxError::Unsupported { tensor: t, .. } = &e else {
                panic!("{case}: {e}");
            };
            assert_eq!(*t, tensor, "{case}: {e}");
            let message = e.to_string();
            assert!(message.contains(expected), "{case}: {message}");
            assert!(message.contains("dense layers"), "{case}: {message}");
        }
        assert!(layers(&[], 5, 5).is_err(), "no layer at all");
    }
}
