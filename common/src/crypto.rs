//! Encryption of upstream keys at rest, compatible with GPT-Load (spec §2.2).
//!
//! With `ENCRYPTION_KEY` set: the 32-byte key is PBKDF2-HMAC-SHA256(password, salt
//! `gpt-load-encryption-v1`, 100 000 iterations); values are AES-256-GCM with a random 12-byte
//! nonce, stored as lowercase hex of `nonce ‖ ciphertext ‖ tag`; `key_hash` is hex
//! HMAC-SHA256(derived key, plaintext). Without it: values are plaintext and `key_hash` is hex
//! SHA-256(plaintext). An empty plaintext hashes to the empty string.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const SALT: &[u8] = b"gpt-load-encryption-v1";
const ITERATIONS: u32 = 100_000;
const NONCE_LEN: usize = 12;

/// Why a stored value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("stored value is not hex")]
    NotHex,
    #[error("stored value is too short to be ciphertext")]
    TooShort,
    #[error("decryption failed (wrong ENCRYPTION_KEY or corrupted value)")]
    Auth,
    #[error("decrypted value is not UTF-8")]
    NotUtf8,
}

/// The key cipher of a process: either no encryption or AES-256-GCM with a derived key.
#[derive(Clone)]
pub enum KeyCipher {
    Plain,
    Aes {
        cipher: Box<Aes256Gcm>,
        key: [u8; 32],
    },
}

impl std::fmt::Debug for KeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain => "KeyCipher::Plain",
            Self::Aes { .. } => "KeyCipher::Aes",
        })
    }
}

impl KeyCipher {
    /// The cipher for an optional `ENCRYPTION_KEY` (derivation takes ~50 ms: do it once).
    pub fn new(password: Option<&str>) -> Self {
        match password {
            None | Some("") => Self::Plain,
            Some(p) => {
                let mut key = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(p.as_bytes(), SALT, ITERATIONS, &mut key);
                let cipher = Box::new(Aes256Gcm::new(&key.into()));
                Self::Aes { cipher, key }
            }
        }
    }

    pub fn is_enabled(&self) -> bool {
        matches!(self, Self::Aes { .. })
    }

    /// The value to store for a plaintext key.
    pub fn encrypt(&self, plaintext: &str) -> String {
        match self {
            Self::Plain => plaintext.to_owned(),
            Self::Aes { cipher, .. } => {
                if plaintext.is_empty() {
                    return String::new();
                }
                let nonce_bytes: [u8; NONCE_LEN] = rand::random();
                let nonce = Nonce::from_slice(&nonce_bytes);
                match cipher.encrypt(nonce, plaintext.as_bytes()) {
                    Ok(ct) => {
                        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
                        out.extend_from_slice(&nonce_bytes);
                        out.extend_from_slice(&ct);
                        hex::encode(out)
                    }
                    // AES-GCM encryption only fails for inputs over 64 GiB.
                    Err(_) => String::new(),
                }
            }
        }
    }

    /// The plaintext of a stored value.
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        match self {
            Self::Plain => Ok(stored.to_owned()),
            Self::Aes { cipher, .. } => {
                if stored.is_empty() {
                    return Ok(String::new());
                }
                let raw = hex::decode(stored).map_err(|_| CryptoError::NotHex)?;
                if raw.len() < NONCE_LEN + 16 {
                    return Err(CryptoError::TooShort);
                }
                let (nonce, ct) = raw.split_at(NONCE_LEN);
                let pt = cipher
                    .decrypt(Nonce::from_slice(nonce), ct)
                    .map_err(|_| CryptoError::Auth)?;
                String::from_utf8(pt).map_err(|_| CryptoError::NotUtf8)
            }
        }
    }

    /// Decrypts, falling back to the raw value (GPT-Load's behaviour at selection time).
    pub fn decrypt_or_raw(&self, stored: &str) -> String {
        self.decrypt(stored).unwrap_or_else(|_| stored.to_owned())
    }

    /// The `key_hash` of a plaintext key.
    pub fn hash(&self, plaintext: &str) -> String {
        if plaintext.is_empty() {
            return String::new();
        }
        match self {
            Self::Plain => sha256_hex(plaintext),
            Self::Aes { key, .. } => {
                let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
                    return String::new();
                };
                mac.update(plaintext.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }
}

/// Hex SHA-256, the unkeyed hash GPT-Load uses without `ENCRYPTION_KEY`.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_stores_plaintext_and_sha256() {
        let c = KeyCipher::new(None);
        assert_eq!(c.encrypt("sk-a"), "sk-a");
        assert_eq!(c.decrypt("sk-a").unwrap(), "sk-a");
        assert_eq!(
            c.hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(c.hash(""), "");
    }

    #[test]
    fn aes_round_trips_with_random_nonces() {
        let c = KeyCipher::new(Some("my-encryption-key"));
        let a = c.encrypt("sk-secret");
        let b = c.encrypt("sk-secret");
        assert_ne!(a, b, "nonces must differ");
        assert_eq!(a.len(), (12 + 9 + 16) * 2);
        assert!(
            a.chars()
                .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
        );
        assert_eq!(c.decrypt(&a).unwrap(), "sk-secret");
        assert_eq!(c.hash("sk-secret"), c.hash("sk-secret"));
        assert_ne!(c.hash("sk-secret"), sha256_hex("sk-secret"));
        let other = KeyCipher::new(Some("other"));
        assert_eq!(other.decrypt(&a), Err(CryptoError::Auth));
        assert_eq!(c.decrypt("zz"), Err(CryptoError::NotHex));
        assert_eq!(c.decrypt("00"), Err(CryptoError::TooShort));
        assert_eq!(other.decrypt_or_raw("plain"), "plain");
    }

    #[test]
    fn matches_values_produced_by_an_independent_implementation() {
        // Produced with Python's hashlib + cryptography (AESGCM), laid out as Go's `gcm.Seal`
        // (nonce ‖ ciphertext ‖ tag): what a GPT-Load database holds for ENCRYPTION_KEY=password.
        let c = KeyCipher::new(Some("password"));
        let stored = "000102030405060708090a0bae9668d5acf94dd571836e264744081af71b3909b84f874223";
        assert_eq!(c.decrypt(stored).unwrap(), "sk-secret");
        assert_eq!(
            c.hash("sk-secret"),
            "a485f19a5b00c8e554b8811c853b8c4da8e20046d15840e616fb0e474cff083e"
        );
    }
}
