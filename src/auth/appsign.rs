//! The development-only app-sign login: a challenge-response in which the app-wide secret never
//! travels. The server sends a fresh nonce in `hello`; the client answers with
//!
//! ```text
//! proof = hex( HMAC-SHA256( key = the 32 bytes of the 64-hex-digit app sign,
//!                           msg = "roomcam-appsign-v1|{app_id}|{room_id}|{user_id}|{nonce}" ) )
//! ```
//! The server refuses it unless the app's config says `allow_app_sign = true`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why an app sign cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppSignError {
    #[error("app sign must be 64 hexadecimal digits")]
    BadAppSign,
}

fn key(app_sign_hex: &str) -> Result<Vec<u8>, AppSignError> {
    let k = hex::decode(app_sign_hex.trim()).map_err(|_| AppSignError::BadAppSign)?;
    if k.len() != 32 {
        return Err(AppSignError::BadAppSign);
    }
    Ok(k)
}

/// Whether `app_sign_hex` is a usable app sign.
pub fn valid_app_sign(app_sign_hex: &str) -> bool {
    key(app_sign_hex).is_ok()
}

fn mac(
    app_sign_hex: &str,
    nonce: &str,
    app_id: u32,
    room_id: &str,
    user_id: &str,
) -> Result<HmacSha256, AppSignError> {
    let k = key(app_sign_hex)?;
    let mut m = HmacSha256::new_from_slice(&k).map_err(|_| AppSignError::BadAppSign)?;
    m.update(format!("roomcam-appsign-v1|{app_id}|{room_id}|{user_id}|{nonce}").as_bytes());
    Ok(m)
}

/// The client side: the proof for this login.
pub fn proof(
    app_sign_hex: &str,
    nonce: &str,
    app_id: u32,
    room_id: &str,
    user_id: &str,
) -> Result<String, AppSignError> {
    Ok(hex::encode(
        mac(app_sign_hex, nonce, app_id, room_id, user_id)?
            .finalize()
            .into_bytes(),
    ))
}

/// The server side: whether `proof_hex` answers this nonce (constant-time comparison).
pub fn verify(
    app_sign_hex: &str,
    nonce: &str,
    app_id: u32,
    room_id: &str,
    user_id: &str,
    proof_hex: &str,
) -> bool {
    let Ok(given) = hex::decode(proof_hex) else {
        return false;
    };
    match mac(app_sign_hex, nonce, app_id, room_id, user_id) {
        Ok(m) => m.verify_slice(&given).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const SIGN: &str = "39011cb0000000000000000000000000000000000000000000000000000000ff";

    #[test]
    fn proof_verifies_only_for_its_inputs() {
        let p = proof(SIGN, "abcd", 1, "room1", "u1").unwrap();
        assert!(verify(SIGN, "abcd", 1, "room1", "u1", &p));
        assert!(!verify(SIGN, "abce", 1, "room1", "u1", &p));
        assert!(!verify(SIGN, "abcd", 2, "room1", "u1", &p));
        assert!(!verify(SIGN, "abcd", 1, "room2", "u1", &p));
        assert!(!verify(SIGN, "abcd", 1, "room1", "u2", &p));
        assert!(!verify(SIGN, "abcd", 1, "room1", "u1", "zz"));
        assert!(!verify(SIGN, "abcd", 1, "room1", "u1", ""));
    }

    #[test]
    fn app_sign_must_be_32_bytes_of_hex() {
        assert!(valid_app_sign(SIGN));
        assert!(!valid_app_sign("abc"));
        assert_eq!(
            proof("xyz", "n", 1, "r", "u"),
            Err(AppSignError::BadAppSign)
        );
    }
}
