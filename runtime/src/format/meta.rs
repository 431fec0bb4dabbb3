//! The optional `META` section: where a model came from (docs/FORMAT.md §2.1).
//!
//! It holds one [`Provenance`] record, then one `u32` per op: the index of the operator in the
//! source model that op came from ([`NO_SOURCE`] when none).

use bytemuck::{Pod, Zeroable};

/// `Provenance::tool` capacity in bytes.
pub const TOOL_LEN: usize = 28;
/// A source index for an op that no single source operator produced.
pub const NO_SOURCE: u32 = u32::MAX;

/// How a model was made (108 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Provenance {
    /// SHA-256 of the source model file.
    pub source_sha256: [u8; 32],
    /// SHA-256 of the calibration data (zero without calibration).
    pub calib_sha256: [u8; 32],
    /// Creation time in seconds since 1970-01-01 UTC: low word, high word.
    pub created: [u32; 2],
    /// Number of calibration samples used.
    pub calib_samples: u32,
    /// Precision: the `DType` byte of the weights (`i8`, `f16` or `f32`).
    pub precision: u8,
    /// [`Calibration`] byte.
    pub calibration: u8,
    /// [`SourceFormat`] byte.
    pub source_format: u8,
    /// Bytes of `tool` in use.
    pub tool_len: u8,
    /// The writing tool and its version, UTF-8, zero-padded (e.g. `ember-quantize 0.1.0`).
    pub tool: [u8; TOOL_LEN],
}

impl Provenance {
    /// Creation time in seconds since 1970-01-01 UTC.
    pub fn created_unix(&self) -> u64 {
        u64::from(self.created[0]) | (u64::from(self.created[1]) << 32)
    }

    /// The writing tool's name and version (empty if not UTF-8: validation rejects that).
    pub fn tool(&self) -> &str {
        self.tool.get(..self.tool_len as usize).and_then(|t| core::str::from_utf8(t).ok()).unwrap_or("")
    }
}

macro_rules! byte_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)*
        }

        impl $name {
            /// Decodes the byte.
            pub fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Short lowercase name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }
    };
}

byte_enum! {
    /// How activation ranges were found (`Provenance::calibration`).
    Calibration {
        /// No calibration (float models).
        None = 0, "none";
        /// Minimum and maximum over the calibration data.
        MinMax = 1, "min-max";
        /// Minimum and maximum over seeded random noise (accuracy not representative).
        MinMaxRandom = 2, "min-max over random noise";
        /// A percentile on each tail of every tensor's values (the percentile is not recorded).
        Percentile = 3, "percentile";
        /// The clipping threshold of least KL divergence (entropy calibration).
        Entropy = 4, "entropy";
        /// The clipping threshold of least expected squared quantization error.
        Mse = 5, "mse";
    }
}

byte_enum! {
    /// The kind of source model (`Provenance::source_format`), which gives the source indices
    /// their meaning.
    SourceFormat {
        /// Unknown: source indices mean nothing.
        Unknown = 0, "unknown";
        /// ONNX: a source index is the node's index in `graph.node`.
        Onnx = 1, "onnx";
        /// TFLite: a source index is the operator's index in subgraph 0.
        Tflite = 2, "tflite";
    }
}
