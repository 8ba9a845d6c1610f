//! The ONNX protobuf messages the exporter writes, derived with prost by hand.
//!
//! Each field carries its number from `onnx/onnx.proto` (ONNX's `proto2` schema; a field's
//! number never changes across IR versions). Only the fields an MLP needs are declared; a
//! decoder skips the others, as protobuf allows. `proto2` rules hold: a scalar field is an
//! `Option` (explicit presence), and a repeated scalar is unpacked unless the schema says
//! `[packed = true]`.

use std::prelude::rust_2024::*;

/// A whole model: versions, producer, the graph (`ModelProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The IR version the model follows.
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// The operator sets the graph uses (the default domain `""` at one version here).
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// The tool that wrote the model.
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// Its version.
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// A reverse-DNS namespace for the model.
    #[prost(string, optional, tag = "4")]
    pub domain: Option<String>,
    /// The model's own version.
    #[prost(int64, optional, tag = "5")]
    pub model_version: Option<i64>,
    /// Free text.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// The computation.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Named strings about the model.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// An operator set and its version (`OperatorSetIdProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `""` (or `"ai.onnx"`) for the standard operators.
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// The opset version.
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// A key and a value (`StringStringEntryProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// The key.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// The value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Nodes in topological order, their constants, inputs and outputs (`GraphProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The operators, each after those whose outputs it reads.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name.
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// Constant tensors (the weights), named as the values nodes read.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Free text.
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    /// The values the caller feeds.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The values the caller gets back.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types of intermediate values (optional: runtimes infer them).
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// One operator applied to named values (`NodeProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// The values it reads, in the operator's order.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// The values it writes.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name.
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// The operator (`"Gemm"`, `"Relu"`).
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// The operator's domain (`""`: the standard one).
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
    /// The operator's attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Free text.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
}

/// Which value field of an [`AttributeProto`] is set (`AttributeProto.AttributeType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// Not set.
    Undefined = 0,
    /// `f`.
    Float = 1,
    /// `i`.
    Int = 2,
    /// `s`.
    String = 3,
    /// `floats`.
    Floats = 6,
    /// `ints`.
    Ints = 7,
    /// `strings`.
    Strings = 8,
}

/// A named operator attribute (`AttributeProto`; tensor, graph and type values not declared).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// The attribute's name (`"transB"`).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Which value field holds the value.
    #[prost(enumeration = "AttributeType", optional, tag = "20")]
    pub r#type: Option<i32>,
    /// A float value.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// An integer value.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// A string value (UTF-8 bytes).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// Float values.
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// Integer values.
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// String values.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// Free text.
    #[prost(string, optional, tag = "13")]
    pub doc_string: Option<String>,
}

/// `TensorProto.DataType::FLOAT`: IEEE 754 f32.
pub const FLOAT: i32 = 1;

/// A constant tensor (`TensorProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// The shape, outermost first.
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// The element type ([`FLOAT`]).
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// Values as floats (unused here: see `raw_data`).
    #[prost(float, repeated, packed = "true", tag = "4")]
    pub float_data: Vec<f32>,
    /// The value's name, as nodes read it.
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// Free text.
    #[prost(string, optional, tag = "12")]
    pub doc_string: Option<String>,
    /// The values, row-major, little-endian.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

/// A named value and its type (`ValueInfoProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// The value's name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Its type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Free text.
    #[prost(string, optional, tag = "3")]
    pub doc_string: Option<String>,
}

/// A value's type (`TypeProto`; only tensors declared).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// What kind of value.
    #[prost(oneof = "TypeValue", tags = "1")]
    pub value: Option<TypeValue>,
    /// A standard meaning of the value (unused here).
    #[prost(string, optional, tag = "6")]
    pub denotation: Option<String>,
}

/// `TypeProto.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TypeValue {
    /// A tensor.
    #[prost(message, tag = "1")]
    TensorType(TensorTypeProto),
}

/// A tensor's element type and shape (`TypeProto.Tensor`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    /// The element type ([`FLOAT`]).
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// A shape (`TensorShapeProto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The dimensions, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// One dimension: a size or a symbol (`TensorShapeProto.Dimension`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// The size or the symbol.
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
    /// A standard meaning of the dimension (unused here).
    #[prost(string, optional, tag = "3")]
    pub denotation: Option<String>,
}

/// `TensorShapeProto.Dimension.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    /// A fixed size.
    #[prost(int64, tag = "1")]
    DimValue(i64),
    /// A symbol, the same size wherever it appears (`"N"`: the batch).
    #[prost(string, tag = "2")]
    DimParam(String),
}
