//! int8 model files (std): safetensors with int8/int32 tensors and the scales.
