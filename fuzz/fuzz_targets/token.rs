//! Fuzz target `token`: token04 decoding (GCM and the legacy CBC path) and the app-sign
//! challenge (`src/auth/`).
//!
//! The first byte picks what the rest feeds:
//! - 0: the rest is a token string, decoded with legacy CBC refused and allowed, at a time
//!   taken from the input. Random bytes almost never authenticate, so this mostly walks the
//!   framing (prefix, base64, lengths, mode byte).
//! - 1 / 2: the rest is the *plaintext* of a token, encrypted here with the fuzzing secret by
//!   AES-256-GCM (1) or AES-256-CBC (2) and framed as token04, so the JSON claims parsing
//!   behind the authentication is reached. A token that decodes must re-mint to the same claims.
//! - 3: the rest is split into app sign, nonce, room and user; a proof made for them must
//!   verify, and must not verify for another user.
//! - else: the rest is a privilege list for `Privileges::parse_list`.
//!
//! Invariants: no panic; every refusal is a `TokenError`; decoded claims survive a re-mint.
#![no_main]

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use roomcam::auth::token04::{self, DecodeOptions, MintRequest, Privileges, TokenClaims};
use roomcam::auth::{TokenError, appsign};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_700_000_000;

fn key() -> &'static [u8; 32] {
    SECRET
        .as_bytes()
        .try_into()
        .expect("the fuzzing secret is 32 bytes")
}

fn pack(expire: i64, nonce: &[u8], ct: &[u8], mode: Option<u8>) -> String {
    let mut out = Vec::new();
    out.extend_from_slice(&expire.to_be_bytes());
    out.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    out.extend_from_slice(ct);
    out.extend(mode);
    format!("04{}", B64.encode(out))
}

fn decode_both(token: &str, now: i64) -> Option<TokenClaims> {
    let strict = DecodeOptions {
        allow_legacy_cbc: false,
        clock_skew_secs: 30,
    };
    let lax = DecodeOptions {
        allow_legacy_cbc: true,
        clock_skew_secs: 30,
    };
    let a = token04::decode(token, SECRET, now, strict);
    let b = token04::decode(token, SECRET, now, lax);
    match (&a, &b) {
        // Allowing CBC changes nothing for a GCM token.
        (Ok(x), _) => assert_eq!(Ok(x), b.as_ref(), "GCM token decodes differently"),
        (Err(TokenError::LegacyRefused), _) => {}
        (Err(e), _) => assert_eq!(Err(e), b.as_ref(), "non-legacy error depends on the switch"),
    }
    b.ok()
}

/// A decoded token re-minted with the same claims decodes to the same claims.
fn check_remint(c: &TokenClaims) {
    let Some(ttl) = c.expire.checked_sub(c.ctime) else {
        return;
    };
    let req = MintRequest {
        app_id: c.app_id,
        user_id: c.user_id.clone(),
        room_id: c.room_id.clone(),
        privileges: c.privileges,
        stream_ids: c.stream_ids.clone(),
        now_unix: c.ctime,
        ttl_secs: ttl,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let Ok(t) = token04::mint(&req, SECRET, &mut rng) else {
        return; // too large to fit token04's u16 lengths: minting refuses, as it should
    };
    let back = token04::decode(&t, SECRET, i64::MIN, DecodeOptions::default())
        .expect("a freshly minted token decodes");
    assert_eq!(back.app_id, c.app_id);
    assert_eq!(back.user_id, c.user_id);
    assert_eq!(back.room_id, c.room_id);
    assert_eq!(back.privileges, c.privileges);
    assert_eq!(back.stream_ids, c.stream_ids);
    assert_eq!(back.expire, c.expire);
    assert_eq!(back.ctime, c.ctime);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel {
        0 => {
            let (now, text) = if rest.len() >= 8 {
                let (n, t) = rest.split_at(8);
                (i64::from_le_bytes(n.try_into().unwrap()), t)
            } else {
                (NOW, rest)
            };
            let token = String::from_utf8_lossy(text);
            if let Some(c) = decode_both(&token, now) {
                check_remint(&c);
            }
        }
        1 | 2 => {
            let token = if sel == 1 {
                let nonce = [7u8; 12];
                let ct = Aes256Gcm::new(key().into())
                    .encrypt(Nonce::from_slice(&nonce), rest)
                    .expect("GCM encrypts any plaintext");
                pack(NOW, &nonce, &ct, Some(token04::MODE_GCM))
            } else {
                let iv = *b"0123456789abcdef";
                let ct = cbc::Encryptor::<aes::Aes256>::new(key().into(), &iv.into())
                    .encrypt_padded_vec_mut::<Pkcs7>(rest);
                pack(NOW, &iv, &ct, None)
            };
            if let Some(c) = decode_both(&token, NOW) {
                check_remint(&c);
            }
        }
        3 => {
            let text = String::from_utf8_lossy(rest);
            let mut parts = text.splitn(4, '|');
            let sign = parts.next().unwrap_or("");
            let nonce = parts.next().unwrap_or("");
            let room = parts.next().unwrap_or("");
            let user = parts.next().unwrap_or("");
            let app_id = rest.len() as u32;
            match appsign::proof(sign, nonce, app_id, room, user) {
                Ok(p) => {
                    assert!(appsign::valid_app_sign(sign));
                    assert!(appsign::verify(sign, nonce, app_id, room, user, &p));
                    let other = format!("{user}x");
                    assert!(!appsign::verify(sign, nonce, app_id, room, &other, &p));
                }
                Err(_) => assert!(!appsign::valid_app_sign(sign)),
            }
            // Whatever the proof text, verifying answers without panicking.
            let _ = appsign::verify(sign, nonce, app_id, room, user, user);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(p) = Privileges::parse_list(&text) {
                let mut list = Vec::new();
                for (on, name) in [(p.login, "login"), (p.publish, "publish"), (p.play, "play")] {
                    if on {
                        list.push(name);
                    }
                }
                assert_eq!(Privileges::parse_list(&list.join(",")), Ok(p));
            }
        }
    }
});
