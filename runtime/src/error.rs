//! The runtime's error type: every failure is a value that says what to fix.

use core::fmt;

use crate::format::layout::WeightLayout;
use crate::format::OpKind;

/// Everything that can go wrong when loading or running a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The bytes are shorter than the header or than the length the header declares.
    Truncated {
        /// Bytes the file needs.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The file does not start with the `EMBR` magic.
    BadMagic,
    /// The file's format version is not one this runtime reads.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
    },
    /// The payload's CRC32 does not match the header: the file is corrupt.
    CrcMismatch {
        /// CRC32 stored in the header.
        expected: u32,
        /// CRC32 of the payload.
        found: u32,
    },
    /// The model bytes are not at a 16-byte aligned address (use `ember::Aligned` (static) or `ember::AlignedBytes` (std)).
    MisalignedModel,
    /// This runtime only runs on little-endian targets.
    BigEndian,
    /// A section of the file lies outside it or is misaligned (section 8: `META`; section 255:
    /// the header's reserved fields are not zero).
    BadSection {
        /// Section index in the header's directory, or 255 for the header.
        section: u8,
    },
    /// The `META` section (provenance, op source indices) is inconsistent.
    BadMetadata {
        /// What is wrong.
        reason: &'static str,
    },
    /// The model carries no signature trailer (sign it with `ember-quantize sign`).
    Unsigned,
    /// The model is signed by another key than the one given.
    WrongKey,
    /// The signature does not match the bytes: the model was modified after signing.
    BadSignature,
    /// A tensor record is inconsistent.
    BadTensor {
        /// Tensor index.
        tensor: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// An operator record is inconsistent.
    BadOp {
        /// Operator index.
        op: u16,
        /// Operator kind (if the kind byte was valid).
        kind: Option<OpKind>,
        /// What is wrong.
        reason: &'static str,
    },
    /// An operator's input or output has a shape its kind cannot take.
    ShapeMismatch {
        /// Operator index.
        op: u16,
        /// Operator kind.
        kind: OpKind,
        /// Offending tensor.
        tensor: u16,
        /// What was expected.
        expected: &'static str,
    },
    /// An input or output descriptor is inconsistent.
    BadIo {
        /// Descriptor index.
        index: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// The memory plan gives two tensors that are alive at the same time overlapping arena bytes.
    PlanOverlap {
        /// First tensor (or `u16::MAX` for an op's scratch buffer).
        a: u16,
        /// Second tensor.
        b: u16,
    },
    /// The arena passed to `Interpreter::new` is too small.
    ArenaTooSmall {
        /// Bytes needed for this arena's address (plan size plus alignment padding).
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The model needs a kernel the interpreter's kernel set does not link.
    KernelNotLinked {
        /// Operator index.
        op: u16,
        /// Operator kind.
        kind: OpKind,
    },
    /// The model's weights for an op are in a layout whose kernels the interpreter's kernel set
    /// does not link (`Kernels::LAYOUTS`, or `DEPTHWISE_LAYOUTS` for depthwise weights).
    LayoutNotLinked {
        /// Operator index.
        op: u16,
        /// Operator kind.
        kind: OpKind,
        /// The weights' layout.
        layout: WeightLayout,
    },
    /// The model plans less scratch for an op than a kernel set's kernels need (this build's,
    /// when the interpreter checks): it was exported for another one (`ember-quantize --target`).
    ScratchTooSmall {
        /// Operator index.
        op: u16,
        /// Operator kind.
        kind: OpKind,
        /// The kernel set.
        target: crate::kernels::scratch::Target,
        /// Scratch bytes its kernels need.
        needed: u32,
        /// Scratch bytes the model plans.
        planned: u32,
    },
    /// No input or output with that index.
    NoSuchIo {
        /// Index asked for.
        index: usize,
        /// Number of inputs or outputs the model has.
        count: usize,
    },
    /// The tensor has another element type than the one asked for.
    WrongType {
        /// Tensor index.
        tensor: u16,
    },
    /// The slice given has another length than the tensor.
    WrongLength {
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// `invoke` was called before this input was written since the last `invoke` (the memory
    /// plan may reuse input bytes, so every run needs fresh inputs).
    InputNotSet {
        /// Input index.
        input: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { needed, got } => {
                write!(f, "model file truncated: needs {needed} bytes, got {got}")
            }
            Error::BadMagic => write!(f, "not an Ember model (magic `EMBR` missing)"),
            Error::UnsupportedVersion { found } => write!(
                f,
                "model format version {found} is not supported by this runtime (reads version {}); re-run ember-quantize",
                crate::format::VERSION
            ),
            Error::CrcMismatch { expected, found } => write!(
                f,
                "model file corrupt: CRC32 {found:#010x} does not match header {expected:#010x}"
            ),
            Error::MisalignedModel => write!(
                f,
                "model bytes must start at a 16-byte aligned address: wrap them in ember::Aligned or ember::AlignedBytes"
            ),
            Error::BigEndian => write!(f, "Ember models run only on little-endian targets"),
            Error::BadSection { section: u8::MAX } => write!(
                f,
                "header flags or reserved fields are not zero (written by a newer ember-quantize?)"
            ),
            Error::BadSection { section } => {
                write!(f, "section {section} lies outside the file or is misaligned")
            }
            Error::BadMetadata { reason } => write!(f, "metadata section: {reason}"),
            Error::Unsigned => write!(
                f,
                "model is not signed: sign it with `ember-quantize sign MODEL --key KEY`"
            ),
            Error::WrongKey => write!(
                f,
                "model is signed by another key: sign it with the key whose public half the firmware holds"
            ),
            Error::BadSignature => write!(
                f,
                "model signature does not match its bytes: the model was modified or corrupted after signing"
            ),
            Error::BadTensor { tensor, reason } => write!(f, "tensor {tensor}: {reason}"),
            Error::BadOp { op, kind: Some(kind), reason } => {
                write!(f, "op {op} ({}): {reason}", kind.name())
            }
            Error::BadOp { op, kind: None, reason } => write!(f, "op {op}: {reason}"),
            Error::ShapeMismatch { op, kind, tensor, expected } => write!(
                f,
                "op {op} ({}): tensor {tensor} has the wrong shape, expected {expected}",
                kind.name()
            ),
            Error::BadIo { index, reason } => write!(f, "input/output descriptor {index}: {reason}"),
            Error::PlanOverlap { a, b } => write!(
                f,
                "memory plan overlaps tensors {a} and {b} while both are alive (u16::MAX = scratch)"
            ),
            Error::ArenaTooSmall { needed, got } => write!(
                f,
                "arena too small: needs {needed} bytes at this address, got {got} (a 16-byte aligned arena needs Model::arena_bytes())"
            ),
            Error::KernelNotLinked { op, kind } => write!(
                f,
                "op {op} ({}) needs a kernel this firmware does not link: regenerate the model module \
                 (ember-build) for this model, or use ember::AllKernels",
                kind.name()
            ),
            Error::LayoutNotLinked { op, kind, layout } => write!(
                f,
                "op {op} ({}) has weights in the {} layout, whose kernels this firmware does not link: \
                 regenerate the model module (ember-build) for this model, or use ember::AllKernels",
                kind.name(),
                layout.name()
            ),
            Error::ScratchTooSmall { op, kind, target, needed, planned } => write!(
                f,
                "op {op} ({}) needs {needed} scratch bytes for the {} kernels but the model plans {planned}: \
                 export it with `ember-quantize quantize --target {}` (or the default `--target any`)",
                kind.name(),
                target.name(),
                target.name()
            ),
            Error::NoSuchIo { index, count } => {
                write!(f, "no input/output {index}: the model has {count}")
            }
            Error::WrongType { tensor } => {
                write!(f, "tensor {tensor} has another element type than the one asked for")
            }
            Error::WrongLength { expected, got } => {
                write!(f, "expected {expected} elements, got {got}")
            }
            Error::InputNotSet { input } => write!(
                f,
                "input {input} was not written since the last invoke: write every input (set_input, input_i8 \
                 or input_f32) before each invoke, as the memory plan may reuse input bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
