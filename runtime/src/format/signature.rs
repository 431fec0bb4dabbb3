//! The optional signature trailer after `file_len` (docs/FORMAT.md §13): an Ed25519 signature
//! by `public_key` of every byte before `signature` (the file and the trailer's first 40 bytes).

use bytemuck::{Pod, Zeroable};

use super::{Header, HEADER_LEN};
use crate::Error;

/// The first bytes of a signature trailer.
pub const MAGIC: [u8; 8] = *b"EMBRSIG1";
/// Size of the [`Trailer`].
pub const TRAILER_LEN: usize = core::mem::size_of::<Trailer>();
/// Bytes of the trailer that the signature covers (`magic` and `public_key`).
pub const SIGNED_TRAILER_LEN: usize = TRAILER_LEN - 64;

/// The 104 bytes right after `file_len` in a signed model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Trailer {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// The signer's Ed25519 public key.
    pub public_key: [u8; 32],
    /// Ed25519 signature of the file and of `magic` and `public_key`.
    pub signature: [u8; 64],
}

/// The header's `file_len`, checked against `bytes`.
pub fn file_len(bytes: &[u8]) -> Result<usize, Error> {
    let header = bytes.get(..HEADER_LEN).ok_or(Error::Truncated { needed: HEADER_LEN, got: bytes.len() })?;
    let file_len = bytemuck::pod_read_unaligned::<Header>(header).file_len as usize;
    if file_len < HEADER_LEN || file_len > bytes.len() {
        return Err(Error::Truncated { needed: file_len.max(HEADER_LEN), got: bytes.len() });
    }
    Ok(file_len)
}

/// The signed message and the trailer of a model, or `None` if it carries no trailer.
pub fn split(bytes: &[u8]) -> Result<Option<(&[u8], Trailer)>, Error> {
    let file_len = file_len(bytes)?;
    let Some(raw) = bytes.get(file_len..file_len + TRAILER_LEN) else { return Ok(None) };
    let trailer: Trailer = bytemuck::pod_read_unaligned(raw);
    let signed = bytes.get(..file_len + SIGNED_TRAILER_LEN).filter(|_| trailer.magic == MAGIC);
    Ok(signed.map(|signed| (signed, trailer)))
}
