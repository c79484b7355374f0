//! token04: the public token format, so existing generators keep working.
//!
//! ```text
//! "04" + base64( i64 BE expire | u16 BE nonce length | nonce | u16 BE ciphertext length | ciphertext [| u8 mode] )
//! ```
//! The AES-256 key is the 32 ASCII bytes of the app's server secret as written. Mode byte 1 is
//! AES-256-GCM (12-byte nonce, 16-byte tag appended to the ciphertext, no associated data); no mode
//! byte is the legacy AES-256-CBC with PKCS#7 and a 16-character IV. The plaintext is JSON
//! `{app_id, user_id, nonce, ctime, expire, payload}`, `payload` being itself a JSON string
//! `{"room_id", "privilege": {"1": login, "2": publish, "3": play}, "stream_id_list"}`.
//!
//! Every token that cannot be decoded, decrypted or authenticated gets the one error
//! [`TokenError::Invalid`]: distinct errors would make the CBC mode a padding oracle. Only the
//! expiry inside the ciphertext is trusted; the outer copy is unauthenticated.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use serde::{Deserialize, Serialize};

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// The version prefix of every token04 token.
pub const PREFIX: &str = "04";
/// The mode byte of an AES-256-GCM token.
pub const MODE_GCM: u8 = 1;
/// Longest token we look at; longer input is rejected before any decoding.
pub const MAX_TOKEN_LEN: usize = 8192;

/// How the token was encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TokenMode {
    Gcm,
    LegacyCbc,
}

/// What a token allows. An absent privilege is allowed (so tokens without our play privilege
/// keep working).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Privileges {
    pub login: bool,
    pub publish: bool,
    pub play: bool,
}

impl Default for Privileges {
    fn default() -> Self {
        Privileges {
            login: true,
            publish: true,
            play: true,
        }
    }
}

impl Privileges {
    /// Parses `login,publish,play` (any subset, comma separated).
    pub fn parse_list(list: &str) -> Result<Privileges, String> {
        let mut p = Privileges {
            login: false,
            publish: false,
            play: false,
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "login" => p.login = true,
                "publish" => p.publish = true,
                "play" => p.play = true,
                other => {
                    return Err(format!(
                        "unknown privilege {other:?}: use login, publish and play, comma separated"
                    ));
                }
            }
        }
        Ok(p)
    }
}

/// The decoded, authenticated content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenClaims {
    pub app_id: u32,
    pub user_id: String,
    pub nonce: i32,
    pub ctime: i64,
    /// Unix seconds, from inside the ciphertext.
    pub expire: i64,
    /// The room the token is bound to; `None` = any room.
    pub room_id: Option<String>,
    pub privileges: Privileges,
    /// The stream ids the holder may publish; empty = any.
    pub stream_ids: Vec<String>,
    pub mode: TokenMode,
}

impl TokenClaims {
    /// Whether this token lets its holder publish `stream_id`.
    pub fn allows_stream(&self, stream_id: &str) -> bool {
        self.stream_ids.is_empty() || self.stream_ids.iter().any(|s| s == stream_id)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Undecodable, tampered, wrong key, bad JSON: one error for all of them.
    #[error("token invalid")]
    Invalid,
    /// The expiry inside the ciphertext has passed (beyond the clock-skew allowance).
    #[error("token expired")]
    Expired,
    /// A legacy CBC token, and the server does not allow them.
    #[error("legacy AES-CBC token refused")]
    LegacyRefused,
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("server secret must be exactly 32 characters (it is {0} bytes)")]
    BadSecret(usize),
    #[error("payload could not be encoded: {0}")]
    Encode(String),
}

/// Options for [`decode`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    pub allow_legacy_cbc: bool,
    /// Seconds of clock skew forgiven on the expiry.
    pub clock_skew_secs: i64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            allow_legacy_cbc: false,
            clock_skew_secs: 30,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Plain {
    app_id: u32,
    user_id: String,
    nonce: i32,
    ctime: i64,
    expire: i64,
    #[serde(default)]
    payload: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Payload {
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default)]
    privilege: Option<std::collections::BTreeMap<String, i64>>,
    #[serde(default)]
    stream_id_list: Option<Vec<String>>,
}

/// The key: the secret's bytes as written; AES-256 needs exactly 32 of them.
fn key_of(secret: &str) -> Option<&[u8; 32]> {
    secret.as_bytes().try_into().ok()
}

/// Whether `secret` can key token04 (32 bytes).
pub fn valid_secret(secret: &str) -> bool {
    key_of(secret).is_some()
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        Some(i64::from_be_bytes(b.try_into().ok()?))
    }
}

/// Decodes and authenticates a token with the app's server secret, at `now_unix` seconds.
pub fn decode(
    token: &str,
    secret: &str,
    now_unix: i64,
    opts: DecodeOptions,
) -> Result<TokenClaims, TokenError> {
    let key = key_of(secret).ok_or(TokenError::Invalid)?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Invalid);
    }
    let body = token.strip_prefix(PREFIX).ok_or(TokenError::Invalid)?;
    let raw = B64.decode(body.trim()).map_err(|_| TokenError::Invalid)?;
    let mut r = Reader { buf: &raw };
    let _outer_expire = r.i64().ok_or(TokenError::Invalid)?;
    let nonce_len = r.u16().ok_or(TokenError::Invalid)?;
    let nonce = r.take(nonce_len).ok_or(TokenError::Invalid)?;
    let ct_len = r.u16().ok_or(TokenError::Invalid)?;
    let ct = r.take(ct_len).ok_or(TokenError::Invalid)?;
    let (mode, plaintext) = match r.buf {
        [MODE_GCM] => {
            if nonce.len() != 12 {
                return Err(TokenError::Invalid);
            }
            let cipher = Aes256Gcm::new(key.into());
            let pt = cipher
                .decrypt(Nonce::from_slice(nonce), ct)
                .map_err(|_| TokenError::Invalid)?;
            (TokenMode::Gcm, pt)
        }
        [] => {
            // The format alone says "legacy": refusing it reveals nothing about the plaintext.
            if !opts.allow_legacy_cbc {
                return Err(TokenError::LegacyRefused);
            }
            if nonce.len() != 16 {
                return Err(TokenError::Invalid);
            }
            let iv: &[u8; 16] = nonce.try_into().map_err(|_| TokenError::Invalid)?;
            let pt = Aes256CbcDec::new(key.into(), iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(ct)
                .map_err(|_| TokenError::Invalid)?;
            (TokenMode::LegacyCbc, pt)
        }
        _ => return Err(TokenError::Invalid),
    };
    let plain: Plain = serde_json::from_slice(&plaintext).map_err(|_| TokenError::Invalid)?;
    let payload: Payload = if plain.payload.trim().is_empty() {
        Payload::default()
    } else {
        serde_json::from_str(&plain.payload).map_err(|_| TokenError::Invalid)?
    };
    let privilege = |k: &str| -> bool {
        payload
            .privilege
            .as_ref()
            .and_then(|m| m.get(k))
            .is_none_or(|v| *v != 0)
    };
    let claims = TokenClaims {
        app_id: plain.app_id,
        user_id: plain.user_id,
        nonce: plain.nonce,
        ctime: plain.ctime,
        expire: plain.expire,
        room_id: payload.room_id.filter(|r| !r.is_empty()),
        privileges: Privileges {
            login: privilege("1"),
            publish: privilege("2"),
            play: privilege("3"),
        },
        stream_ids: payload.stream_id_list.unwrap_or_default(),
        mode,
    };
    if claims.expire.saturating_add(opts.clock_skew_secs) < now_unix {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// What to put in a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub app_id: u32,
    pub user_id: String,
    pub room_id: Option<String>,
    pub privileges: Privileges,
    pub stream_ids: Vec<String>,
    /// Unix seconds of issue.
    pub now_unix: i64,
    /// Seconds the token is valid.
    pub ttl_secs: i64,
}

fn payload_json(req: &MintRequest) -> Result<String, MintError> {
    let mut privilege = std::collections::BTreeMap::new();
    privilege.insert("1".to_string(), i64::from(req.privileges.login));
    privilege.insert("2".to_string(), i64::from(req.privileges.publish));
    privilege.insert("3".to_string(), i64::from(req.privileges.play));
    let p = Payload {
        room_id: Some(req.room_id.clone().unwrap_or_default()),
        privilege: Some(privilege),
        stream_id_list: if req.stream_ids.is_empty() {
            None
        } else {
            Some(req.stream_ids.clone())
        },
    };
    serde_json::to_string(&p).map_err(|e| MintError::Encode(e.to_string()))
}

fn plaintext(req: &MintRequest, nonce: i32) -> Result<Vec<u8>, MintError> {
    let plain = Plain {
        app_id: req.app_id,
        user_id: req.user_id.clone(),
        nonce,
        ctime: req.now_unix,
        expire: req.now_unix.saturating_add(req.ttl_secs),
        payload: payload_json(req)?,
    };
    serde_json::to_vec(&plain).map_err(|e| MintError::Encode(e.to_string()))
}

fn pack(expire: i64, nonce: &[u8], ct: &[u8], mode: Option<u8>) -> String {
    let mut out = Vec::with_capacity(8 + 2 + nonce.len() + 2 + ct.len() + 1);
    out.extend_from_slice(&expire.to_be_bytes());
    out.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    out.extend_from_slice(ct);
    out.extend(mode);
    format!("{PREFIX}{}", B64.encode(out))
}

/// Mints an AES-256-GCM token04 token. `rng` supplies the nonces.
pub fn mint<R: rand::RngCore>(
    req: &MintRequest,
    secret: &str,
    rng: &mut R,
) -> Result<String, MintError> {
    let key = key_of(secret).ok_or(MintError::BadSecret(secret.len()))?;
    let pt = plaintext(req, rng.next_u32() as i32)?;
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(key.into());
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), pt.as_slice())
        .map_err(|_| MintError::Encode("AES-GCM encryption failed".into()))?;
    if ct.len() > u16::MAX as usize {
        return Err(MintError::Encode("token payload too large".into()));
    }
    Ok(pack(
        req.now_unix.saturating_add(req.ttl_secs),
        &nonce,
        &ct,
        Some(MODE_GCM),
    ))
}

/// Mints a legacy AES-256-CBC token (for tests and for servers that still accept them).
pub fn mint_legacy_cbc<R: rand::RngCore>(
    req: &MintRequest,
    secret: &str,
    rng: &mut R,
) -> Result<String, MintError> {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let key = key_of(secret).ok_or(MintError::BadSecret(secret.len()))?;
    let pt = plaintext(req, rng.next_u32() as i32)?;
    let mut iv = [0u8; 16];
    for b in &mut iv {
        *b = CHARS[(rng.next_u32() as usize) % CHARS.len()];
    }
    let ct = Aes256CbcEnc::new(key.into(), (&iv).into()).encrypt_padded_vec_mut::<Pkcs7>(&pt);
    if ct.len() > u16::MAX as usize {
        return Err(MintError::Encode("token payload too large".into()));
    }
    Ok(pack(
        req.now_unix.saturating_add(req.ttl_secs),
        &iv,
        &ct,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn req() -> MintRequest {
        MintRequest {
            app_id: 1234567890,
            user_id: "pi-livingroom".into(),
            room_id: Some("room1".into()),
            privileges: Privileges {
                login: true,
                publish: false,
                play: true,
            },
            stream_ids: vec!["s1".into()],
            now_unix: 1_700_000_000,
            ttl_secs: 3600,
        }
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn gcm_round_trip() {
        let t = mint(&req(), SECRET, &mut rng()).unwrap();
        assert!(t.starts_with("04"));
        let c = decode(&t, SECRET, 1_700_000_100, DecodeOptions::default()).unwrap();
        assert_eq!(c.app_id, 1234567890);
        assert_eq!(c.user_id, "pi-livingroom");
        assert_eq!(c.room_id.as_deref(), Some("room1"));
        assert!(!c.privileges.publish && c.privileges.login && c.privileges.play);
        assert_eq!(c.expire, 1_700_003_600);
        assert_eq!(c.mode, TokenMode::Gcm);
        assert!(c.allows_stream("s1") && !c.allows_stream("s2"));
    }

    #[test]
    fn cbc_needs_the_switch() {
        let t = mint_legacy_cbc(&req(), SECRET, &mut rng()).unwrap();
        let now = 1_700_000_100;
        assert_eq!(
            decode(&t, SECRET, now, DecodeOptions::default()),
            Err(TokenError::LegacyRefused)
        );
        let opts = DecodeOptions {
            allow_legacy_cbc: true,
            ..Default::default()
        };
        let c = decode(&t, SECRET, now, opts).unwrap();
        assert_eq!(c.mode, TokenMode::LegacyCbc);
        assert_eq!(c.user_id, "pi-livingroom");
    }

    #[test]
    fn expiry_is_from_inside_with_skew() {
        let t = mint(&req(), SECRET, &mut rng()).unwrap();
        let o = DecodeOptions::default();
        assert!(decode(&t, SECRET, 1_700_003_600 + 30, o).is_ok());
        assert_eq!(
            decode(&t, SECRET, 1_700_003_600 + 31, o),
            Err(TokenError::Expired)
        );
        // Rewrite the unauthenticated outer expiry: nothing changes.
        let mut raw = B64.decode(&t[2..]).unwrap();
        raw[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let forged = format!("04{}", B64.encode(&raw));
        assert_eq!(
            decode(&forged, SECRET, 1_700_003_700, o),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn every_tamper_is_the_same_error() {
        let t = mint(&req(), SECRET, &mut rng()).unwrap();
        let o = DecodeOptions {
            allow_legacy_cbc: true,
            ..Default::default()
        };
        let now = 1_700_000_100;
        let raw = B64.decode(&t[2..]).unwrap();
        for i in 8..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let forged = format!("04{}", B64.encode(&bad));
            let r = decode(&forged, SECRET, now, o);
            assert!(r.is_err(), "flip at byte {i} accepted");
            assert_ne!(r, Err(TokenError::Expired));
        }
        for bad in ["", "04", "03abc", "04!!!!", "04AAAA", &t[..t.len() - 4]] {
            assert_eq!(
                decode(bad, SECRET, now, o),
                Err(TokenError::Invalid),
                "{bad}"
            );
        }
        let other = "ffffffffffffffffffffffffffffffff";
        assert_eq!(decode(&t, other, now, o), Err(TokenError::Invalid));
        // CBC with the wrong key: padding errors and JSON errors look the same.
        let c = mint_legacy_cbc(&req(), SECRET, &mut rng()).unwrap();
        assert_eq!(decode(&c, other, now, o), Err(TokenError::Invalid));
    }

    #[test]
    fn privilege_list_parses() {
        let p = Privileges::parse_list("login,play").unwrap();
        assert!(p.login && p.play && !p.publish);
        assert!(Privileges::parse_list("login,fly").is_err());
    }

    #[test]
    fn bad_secret_cannot_mint() {
        assert_eq!(
            mint(&req(), "short", &mut rng()),
            Err(MintError::BadSecret(5))
        );
    }
}
