//! Signed models: Ed25519 key pairs, signing a model file, checking a signature (with the
//! runtime's own verification, as firmware runs it). The trailer is docs/FORMAT.md §13.

use anyhow::{ensure, Context, Result};
use ed25519_compact::{KeyPair, SecretKey};
use ember::format::signature::{file_len, MAGIC};
use ember::{AlignedBytes, Model};

/// A new key pair: the 64-byte secret key (seed, then public key) and the 32-byte public key.
pub fn keygen() -> ([u8; 64], [u8; 32]) {
    let pair = KeyPair::generate();
    (*pair.sk, *pair.pk)
}

/// `model` (a valid model file, signed or not) signed by `secret_key` (64 bytes from
/// [`keygen`]): the file without any previous trailer, then a new trailer.
pub fn sign(model: &[u8], secret_key: &[u8]) -> Result<Vec<u8>> {
    let sk = SecretKey::from_slice(secret_key).ok().with_context(|| {
        format!("a secret key is the 64 bytes `ember-quantize keygen` writes, got {} bytes", secret_key.len())
    })?;
    let file = &model[..file_len(model)?];
    Model::from_bytes(&AlignedBytes::new(file)).context("only a valid model can be signed")?;
    let mut signed = [file, &MAGIC, sk.public_key().as_ref()].concat();
    let signature = sk.sign(&signed, None);
    signed.extend_from_slice(signature.as_ref());
    ensure!(
        verify(&signed, sk.public_key().as_ref()).is_ok(),
        "the secret key is damaged: its public half does not match its seed; run `ember-quantize keygen` again"
    );
    Ok(signed)
}

/// Checks that `model` is a valid model signed by `public_key` (32 bytes).
pub fn verify(model: &[u8], public_key: &[u8]) -> Result<()> {
    let key: &[u8; 32] = public_key.try_into().ok().with_context(|| {
        format!("a public key is the 32 bytes `ember-quantize keygen` writes, got {} bytes", public_key.len())
    })?;
    Model::from_bytes_verified(&AlignedBytes::new(model), key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember::Error;

    fn digits() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../targets/models/digits_int8.ember");
        std::fs::read(path).unwrap()
    }

    /// The runtime's verdict on `bytes`.
    fn verdict(bytes: &[u8], key: &[u8; 32]) -> Result<(), Error> {
        Model::from_bytes_verified(&AlignedBytes::new(bytes), key).map(|_| ())
    }

    #[test]
    fn a_signed_model_verifies_and_signing_again_replaces_the_signature() {
        let (sk, pk) = keygen();
        let signed = sign(&digits(), &sk).unwrap();
        verify(&signed, &pk).unwrap();
        assert_eq!(signed.len(), digits().len() + ember::format::signature::TRAILER_LEN);
        let (sk2, pk2) = keygen();
        let resigned = sign(&signed, &sk2).unwrap();
        assert_eq!(resigned.len(), signed.len());
        verify(&resigned, &pk2).unwrap();
    }

    #[test]
    fn unsigned_wrongly_signed_and_modified_models_give_distinct_errors() {
        let (sk, pk) = keygen();
        let (_, other) = keygen();
        let signed = sign(&digits(), &sk).unwrap();
        assert_eq!(verdict(&digits(), &pk), Err(Error::Unsigned));
        assert_eq!(verdict(&signed, &other), Err(Error::WrongKey));
        let mut modified = signed.clone();
        modified[200] ^= 1;
        assert_eq!(verdict(&modified, &pk), Err(Error::BadSignature));
    }

    #[test]
    fn every_bit_flip_of_a_signed_model_fails_verification() {
        let (sk, pk) = keygen();
        let signed = sign(&digits(), &sk).unwrap();
        let mut flipped = signed.clone();
        for byte in 0..signed.len() {
            for bit in 0..8 {
                flipped[byte] ^= 1 << bit;
                assert!(verify(&flipped, &pk).is_err(), "byte {byte} bit {bit}: `verify` accepts it");
                assert!(verdict(&flipped, &pk).is_err(), "byte {byte} bit {bit}: the runtime accepts it");
                flipped[byte] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn the_committed_signed_model_is_the_committed_model_signed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../targets/models/");
        let signed = std::fs::read(format!("{dir}digits_int8.signed.ember")).unwrap();
        let key = std::fs::read(format!("{dir}digits_int8.ember.pub")).unwrap();
        verify(&signed, &key).expect("re-sign it after regenerating digits_int8.ember (docs/BENCHMARKS.md)");
        assert_eq!(&signed[..file_len(&signed).unwrap()], digits(), "re-sign digits_int8.signed.ember");
    }

    #[test]
    fn malformed_keys_are_refused_with_their_length() {
        let e = sign(&digits(), &[0; 32]).unwrap_err().to_string();
        assert!(e.contains("64 bytes") && e.contains("got 32"), "{e}");
        let e = verify(&digits(), &[0; 64]).unwrap_err().to_string();
        assert!(e.contains("32 bytes") && e.contains("got 64"), "{e}");
    }
}
