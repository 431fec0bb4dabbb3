//! Ember: a `no_std` neural-network runtime for microcontrollers.
//!
//! Load a model with [`Model::from_bytes`] (zero-copy: the bytes can stay in flash), give an
//! [`Interpreter`] an arena of [`Model::arena_bytes`] bytes, fill the inputs, [`Interpreter::invoke`].
//! Nothing allocates; every failure is an [`Error`] value.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
// Outside the kernels nothing may panic on any input: every index is checked (`get`), nothing
// unwraps. The kernels index within the lengths `Model::validate_ops` proved (docs/FORMAT.md §10).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

mod error;
pub mod format;
mod interpreter;
#[allow(clippy::indexing_slicing)]
pub mod kernels;
mod model;
mod ops;
pub mod quant;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(feature = "verify")]
pub mod verify;

pub use error::Error;
pub use interpreter::{Hook, Interpreter, NoHook, OpEvent, OpOutput};
pub use model::{IoInfo, Metadata, Model, OpInfo, TensorInfo};
pub use ops::{kernel_bit, layout_bit, AllKernels, Kernels};

/// CRC-32 (IEEE 802.3) of the model header, with a 1 KiB lookup table to keep flash small.
/// `CRC32.checksum(bytes)` or `CRC32.digest()` for streaming.
pub const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Wraps data (e.g. `include_bytes!` of a model) at the 16-byte alignment models need.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// An owned, 16-byte aligned copy of a model file.
#[cfg(any(test, feature = "std"))]
#[derive(Clone, Debug)]
pub struct AlignedBytes {
    storage: Vec<u128>,
    len: usize,
}

#[cfg(any(test, feature = "std"))]
impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut storage = vec![0u128; bytes.len().div_ceil(16)];
        for (to, &from) in bytemuck::cast_slice_mut::<u128, u8>(&mut storage).iter_mut().zip(bytes) {
            *to = from;
        }
        Self { storage, len: bytes.len() }
    }
}

#[cfg(any(test, feature = "std"))]
impl core::ops::Deref for AlignedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // `storage` holds at least `len` bytes (`new`), so this is never the empty fallback.
        bytemuck::cast_slice::<u128, u8>(&self.storage).get(..self.len).unwrap_or_default()
    }
}
