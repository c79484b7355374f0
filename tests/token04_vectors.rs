//! token04 against an independent implementation (tests/vectors/token04.py, Python
//! `cryptography`): tokens minted there decode here, and tokens minted here decode there.
//! The Python interpreter is `$ROOMCAM_PYTHON`, else `/usr/bin/python3` (Debian's, which has
//! `python3-cryptography` from scripts/setup.sh).

use roomcam::auth::token04::{self, DecodeOptions, MintRequest, Privileges, TokenError, TokenMode};
use serde_json::{Value, json};
use std::process::Command;

const SECRET: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const NOW: i64 = 1_750_000_000;

fn python(cmd: &str, arg: &Value) -> String {
    let py = std::env::var("ROOMCAM_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/token04.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(cmd)
        .arg(arg.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} (run scripts/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "python {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn py_mint(mode: &str, payload: Value, expire: i64) -> String {
    python(
        "mint",
        &json!({"secret": SECRET, "mode": mode, "app_id": 3141592653u32, "user_id": "pi-kitchen",
                "nonce": -123456, "ctime": NOW - 10, "expire": expire, "payload": payload}),
    )
}

fn cbc_ok() -> DecodeOptions {
    DecodeOptions {
        allow_legacy_cbc: true,
        clock_skew_secs: 30,
    }
}

#[test]
fn python_gcm_token_decodes_with_all_fields() {
    let payload =
        json!({"room_id": "room1", "privilege": {"1": 1, "2": 0}, "stream_id_list": ["a", "b"]});
    let t = py_mint("gcm", payload, NOW + 3600);
    let c = token04::decode(&t, SECRET, NOW, DecodeOptions::default()).unwrap();
    assert_eq!(c.app_id, 3141592653);
    assert_eq!(c.user_id, "pi-kitchen");
    assert_eq!(c.nonce, -123456);
    assert_eq!(c.ctime, NOW - 10);
    assert_eq!(c.expire, NOW + 3600);
    assert_eq!(c.room_id.as_deref(), Some("room1"));
    assert!(c.privileges.login);
    assert!(!c.privileges.publish);
    assert!(c.privileges.play, "absent play privilege means allowed");
    assert_eq!(c.stream_ids, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(c.mode, TokenMode::Gcm);
}

#[test]
fn python_gcm_token_with_empty_payload_allows_everything() {
    let t = py_mint("gcm", json!(""), NOW + 60);
    let c = token04::decode(&t, SECRET, NOW, DecodeOptions::default()).unwrap();
    assert_eq!(c.room_id, None);
    assert_eq!(c.privileges, Privileges::default());
    assert!(c.allows_stream("anything"));
}

#[test]
fn python_cbc_token_needs_the_switch() {
    let payload = json!({"room_id": "", "privilege": {"1": 1, "2": 1, "3": 0}});
    let t = py_mint("cbc", payload, NOW + 60);
    assert_eq!(
        token04::decode(&t, SECRET, NOW, DecodeOptions::default()),
        Err(TokenError::LegacyRefused)
    );
    let c = token04::decode(&t, SECRET, NOW, cbc_ok()).unwrap();
    assert_eq!(c.mode, TokenMode::LegacyCbc);
    assert_eq!(c.room_id, None);
    assert!(!c.privileges.play);
}

#[test]
fn python_expired_token_is_expired_and_wrong_secret_is_invalid() {
    let t = py_mint("gcm", json!(""), NOW - 100);
    assert_eq!(
        token04::decode(&t, SECRET, NOW, DecodeOptions::default()),
        Err(TokenError::Expired)
    );
    let t = py_mint("cbc", json!(""), NOW + 100);
    let wrong = "ffffffffffffffffffffffffffffffff";
    assert_eq!(
        token04::decode(&t, wrong, NOW, cbc_ok()),
        Err(TokenError::Invalid)
    );
}

#[test]
fn our_tokens_decode_in_python() {
    let req = MintRequest {
        app_id: 42,
        user_id: "browser-1".into(),
        room_id: Some("room9".into()),
        privileges: Privileges {
            login: true,
            publish: true,
            play: false,
        },
        stream_ids: vec!["s-1".into()],
        now_unix: NOW,
        ttl_secs: 600,
    };
    let mut rng = rand::thread_rng();
    for t in [
        token04::mint(&req, SECRET, &mut rng).unwrap(),
        token04::mint_legacy_cbc(&req, SECRET, &mut rng).unwrap(),
    ] {
        let plain: Value =
            serde_json::from_str(&python("decode", &json!({"secret": SECRET, "token": t})))
                .unwrap();
        assert_eq!(plain["app_id"], 42);
        assert_eq!(plain["user_id"], "browser-1");
        assert_eq!(plain["ctime"], NOW);
        assert_eq!(plain["expire"], NOW + 600);
        assert!(plain["nonce"].is_i64());
        let payload: Value = serde_json::from_str(plain["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["room_id"], "room9");
        assert_eq!(payload["privilege"]["1"], 1);
        assert_eq!(payload["privilege"]["2"], 1);
        assert_eq!(payload["privilege"]["3"], 0);
        assert_eq!(payload["stream_id_list"], json!(["s-1"]));
    }
}
