//! Signed models (feature `verify`): checks the Ed25519 signature trailer (docs/FORMAT.md §13)
//! before loading, so firmware refuses a model that was modified or signed by another key.

use ed25519_compact::{PublicKey, Signature};

use crate::format::signature;
use crate::{Error, Model};

/// Checks that `bytes` carry a signature by `public_key` of the whole file: [`Error::Unsigned`]
/// without a trailer, [`Error::WrongKey`] when another key signed, [`Error::BadSignature`] when
/// any signed byte changed.
pub fn verify(bytes: &[u8], public_key: &[u8; 32]) -> Result<(), Error> {
    let (message, trailer) = signature::split(bytes)?.ok_or(Error::Unsigned)?;
    if trailer.public_key != *public_key {
        return Err(Error::WrongKey);
    }
    PublicKey::new(*public_key)
        .verify(message, &Signature::new(trailer.signature))
        .map_err(|_| Error::BadSignature)
}

impl<'a> Model<'a> {
    /// [`verify`]s the signature of `bytes` by `public_key`, then [`Model::from_bytes`].
    pub fn from_bytes_verified(bytes: &'a [u8], public_key: &[u8; 32]) -> Result<Self, Error> {
        verify(bytes, public_key)?;
        Model::from_bytes(bytes)
    }
}
