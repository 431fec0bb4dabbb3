//! The Ember model file, version 2: what the bytes mean (docs/FORMAT.md is the prose form).
//!
//! Every record is a `#[repr(C)]` plain-old-data struct read in place from the file with
//! `bytemuck`, so the runtime never copies the model. All integers are little-endian.

pub mod layout;
pub mod meta;
pub mod params;
pub mod signature;
// Host-side (std): the builder indexes its own vectors, and ember-quantize reports a panic there
// as an internal error.
#[cfg(any(test, feature = "std"))]
#[allow(clippy::indexing_slicing)]
pub mod writer;

use bytemuck::{Pod, Zeroable};

/// The first four bytes of every model file.
pub const MAGIC: [u8; 4] = *b"EMBR";
/// The format version this runtime reads and writes.
pub const VERSION: u16 = 2;
/// Size of the fixed header.
pub const HEADER_LEN: usize = core::mem::size_of::<Header>();
/// Alignment of the model bytes in memory and of every constant in the blob.
pub const ALIGN: usize = 16;
/// Maximum tensor rank.
pub const MAX_RANK: usize = 6;
/// `TensorRecord::alias_of` value for a tensor with its own storage.
pub const NO_ALIAS: u16 = u16::MAX;
/// `TensorRecord::quant_axis` value for per-tensor quantization.
pub const PER_TENSOR: u8 = u8::MAX;
/// `OpRecord::flags` bit of an int8 `conv2d`, `depthwise_conv2d` or `fully_connected` whose
/// requantization rounds once (TFLite's reference per-tensor FULLY_CONNECTED), not twice.
pub const OP_SINGLE_ROUNDING: u8 = 1;

/// Index of each section in `Header::sections`.
pub mod section {
    /// Tensor records.
    pub const TENSORS: usize = 0;
    /// Operator records.
    pub const OPS: usize = 1;
    /// `u16` tensor ids: each op's inputs then outputs.
    pub const OP_IO: usize = 2;
    /// Operator parameter structs.
    pub const PARAMS: usize = 3;
    /// Quantization records.
    pub const QUANT: usize = 4;
    /// Model input descriptors.
    pub const INPUTS: usize = 5;
    /// Model output descriptors.
    pub const OUTPUTS: usize = 6;
    /// Constant data.
    pub const BLOB: usize = 7;
    /// Number of sections in the directory.
    pub const COUNT: usize = 8;
    /// The `META` section's index in errors (its entry is `Header::meta`, not in the directory).
    pub const META: usize = 8;
}

/// Location of a section in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Section {
    /// Byte offset from the start of the file.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// The fixed 96-byte header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Header {
    /// `EMBR`.
    pub magic: [u8; 4],
    /// Format version.
    pub version: u16,
    /// Reserved, zero.
    pub flags: u16,
    /// Total file length in bytes.
    pub file_len: u32,
    /// CRC32 (IEEE) of bytes `16..file_len`.
    pub crc32: u32,
    /// Arena bytes the memory plan needs.
    pub arena_bytes: u32,
    /// The optional `META` section ([`meta`]): offset and length 0 when absent.
    pub meta: Section,
    /// Reserved, zero.
    pub reserved: u32,
    /// Section directory, indexed by the constants in [`section`].
    pub sections: [Section; section::COUNT],
}

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum DType {
    /// Signed 8-bit integer.
    I8 = 1,
    /// Signed 32-bit integer (biases, requantization tables).
    I32 = 2,
    /// IEEE half (weights of f16 models).
    F16 = 3,
    /// IEEE single.
    F32 = 4,
}

impl DType {
    /// Decodes a dtype byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => DType::I8,
            2 => DType::I32,
            3 => DType::F16,
            4 => DType::F32,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::F16 => 2,
            DType::I32 | DType::F32 => 4,
        }
    }

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::I32 => "i32",
            DType::F16 => "f16",
            DType::F32 => "f32",
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Storage {
    /// In the model's constant blob (read in place).
    Constant = 0,
    /// In the arena, at the planned offset.
    Arena = 1,
}

/// One tensor (56 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct TensorRecord {
    /// [`DType`] byte.
    pub dtype: u8,
    /// Number of dimensions (0..=6).
    pub rank: u8,
    /// [`Storage`] byte.
    pub storage: u8,
    /// Quantized axis for per-channel quantization, or [`PER_TENSOR`].
    pub quant_axis: u8,
    /// Dimensions; entries past `rank` are zero.
    pub dims: [u32; MAX_RANK],
    /// Byte offset in the blob (constants, 16-aligned) or in the arena (activations).
    pub offset: u32,
    /// Byte length (`elements × dtype size`).
    pub byte_len: u32,
    /// First quantization record.
    pub quant_start: u32,
    /// Number of quantization records: 0 (float), 1 (per tensor) or `dims[quant_axis]`.
    pub quant_count: u32,
    /// Tensor whose storage this one shares (reshape), or [`NO_ALIAS`].
    pub alias_of: u16,
    /// First op during which the tensor is alive (its producer, or 0 for model inputs).
    pub live_first: u16,
    /// Last op during which the tensor is alive (its last reader; the last op for outputs).
    pub live_last: u16,
    /// [`layout::WeightLayout`] byte (0, standard, for every tensor but int8 weights).
    pub layout: u8,
    /// Reserved, zero.
    pub reserved: u8,
    /// Reserved, zero.
    pub reserved2: u32,
}

/// One quantization step: `real = scale × (q − zero_point)` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct QuantRecord {
    /// Scale, finite and > 0.
    pub scale: f32,
    /// Zero point (0 for weights).
    pub zero_point: i32,
}

/// One operator (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct OpRecord {
    /// [`OpKind`] byte.
    pub kind: u8,
    /// Number of inputs.
    pub n_inputs: u8,
    /// Number of outputs.
    pub n_outputs: u8,
    /// [`OP_SINGLE_ROUNDING`] or zero.
    pub flags: u8,
    /// Index of the first input id in the `OP_IO` section; outputs follow the inputs.
    pub io_start: u32,
    /// Byte offset of the parameter struct in the `PARAMS` section (4-aligned).
    pub params_offset: u32,
    /// Byte length of the parameter struct.
    pub params_len: u32,
    /// Arena offset of the op's scratch buffer.
    pub scratch_offset: u32,
    /// Scratch bytes the op needs (0 for every reference kernel).
    pub scratch_len: u32,
}

/// A model input or output as the user sees it (96 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct IoRecord {
    /// The tensor holding the data (in the internal layout).
    pub tensor: u16,
    /// Bytes of `name` in use.
    pub name_len: u8,
    /// Rank of the original (ONNX) shape.
    pub onnx_rank: u8,
    /// Internal axis `i` is original axis `perm[i]`.
    pub perm: [u8; MAX_RANK],
    /// Reserved, zero.
    pub reserved: [u8; 2],
    /// The original (ONNX) shape.
    pub onnx_dims: [u32; MAX_RANK],
    /// UTF-8 name, zero-padded.
    pub name: [u8; 60],
}

impl Default for IoRecord {
    fn default() -> Self {
        Zeroable::zeroed()
    }
}

macro_rules! op_kinds {
    ($($(#[$doc:meta])* $variant:ident = $value:literal, $name:literal;)*) => {
        /// Operator kinds, with one snake_case name used everywhere (format, glue, kernels, docs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum OpKind {
            $($(#[$doc])* $variant = $value,)*
        }

        impl OpKind {
            /// Every kind, in byte order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant,)*];

            /// Decodes a kind byte.
            pub fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $($value => Some(OpKind::$variant),)*
                    _ => None,
                }
            }

            /// The op's snake_case name.
            pub fn name(self) -> &'static str {
                match self {
                    $(OpKind::$variant => $name,)*
                }
            }
        }

        /// The snake_case name, interned by defmt (not stored in flash).
        #[cfg(feature = "defmt")]
        impl defmt::Format for OpKind {
            fn format(&self, f: defmt::Formatter<'_>) {
                match self {
                    $(OpKind::$variant => defmt::write!(f, $name),)*
                }
            }
        }
    };
}

op_kinds! {
    /// 2-D convolution: `[x, w, bias]` (+ `requant` for int8).
    Conv2d = 1, "conv2d";
    /// Depthwise 2-D convolution with channel multiplier: `[x, w, bias]` (+ `requant`).
    DepthwiseConv2d = 2, "depthwise_conv2d";
    /// Matrix times constant weights: `[x, w, bias]` (+ `requant`).
    FullyConnected = 3, "fully_connected";
    /// Broadcasting addition: `[a, b]`.
    Add = 4, "add";
    /// Broadcasting multiplication: `[a, b]`.
    Mul = 5, "mul";
    /// `max(x, 0)`: `[x]` (+ `table` for int8).
    Relu = 6, "relu";
    /// Clamp to `[min, max]`, e.g. Relu6: `[x]` (+ `table`).
    Clip = 7, "clip";
    /// `x` if positive else `alpha × x`: `[x]` (+ `table`).
    LeakyRelu = 8, "leaky_relu";
    /// `x × relu6(x + 3) / 6`: `[x]` (+ `table`).
    HardSwish = 9, "hard_swish";
    /// `clamp(alpha × x + beta, 0, 1)`: `[x]` (+ `table`).
    HardSigmoid = 10, "hard_sigmoid";
    /// Logistic function: `[x]` (+ `table`).
    Sigmoid = 11, "sigmoid";
    /// Hyperbolic tangent: `[x]` (+ `table`).
    Tanh = 12, "tanh";
    /// Max pooling: `[x]`.
    MaxPool = 13, "max_pool";
    /// Average pooling, padded cells excluded: `[x]`.
    AveragePool = 14, "average_pool";
    /// Mean over height and width: `[x]`.
    Mean = 15, "mean";
    /// Same elements, new shape (aliases its input): `[x]`.
    Reshape = 16, "reshape";
    /// Concatenation along an axis: `[x0, x1, …]`.
    Concat = 17, "concat";
    /// Constant padding: `[x]`.
    Pad = 18, "pad";
    /// Axis permutation: `[x]`.
    Transpose = 19, "transpose";
    /// Softmax over the last axis: `[x]`.
    Softmax = 20, "softmax";
    /// f32 to int8 with the output's per-tensor scale and zero point: `[x]`.
    Quantize = 21, "quantize";
    /// int8 to f32 with the input's per-tensor scale and zero point: `[x]`.
    Dequantize = 22, "dequantize";
}

impl OpKind {
    /// Whether an op of this kind may write its output over one of its inputs (docs/FORMAT.md
    /// §10, check 27): its kernel reads each input element only before writing the output
    /// element at the same index (softmax: before writing that element's row).
    pub fn runs_in_place(self) -> bool {
        use OpKind::*;
        matches!(
            self,
            Add | Mul | Relu | Clip | LeakyRelu | HardSwish | HardSigmoid | Sigmoid | Tanh | Softmax
        )
    }
}
