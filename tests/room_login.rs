//! Login: tokens of every kind, app sign, id rules, and what a new joiner is told.

mod common;

use common::server::*;
use roomcam::auth::Privileges;
use roomcam::protocol::{ServerMessage, UpdateType};
use serde_json::json;

fn login_json(room: &str, user: &str, token: &str) -> serde_json::Value {
    json!({"type":"login","version":1,"appId":APP,"roomId":room,"userId":user,"userName":"n","token":token})
}

#[tokio::test]
async fn login_creates_room_and_new_joiner_gets_users_and_streams() {
    let srv = TestServer::default().await;
    let (mut a, r) = Client::login(&srv, "room1", "alice", true).await;
    let ServerMessage::LoginResult {
        users,
        streams,
        room_id,
        token_expire,
        ..
    } = r
    else {
        unreachable!()
    };
    assert_eq!(room_id, "room1");
    assert!(users.is_empty() && streams.is_empty());
    assert!(token_expire.unwrap() > now_unix());
    assert_eq!(
        a.request(json!({"type":"publish","streamId":"alice-main"}))
            .await,
        ServerMessage::PublishResult {
            stream_id: "alice-main".into()
        }
    );

    let (_b, r) = Client::login(&srv, "room1", "bob", false).await;
    let ServerMessage::LoginResult { users, streams, .. } = r else {
        unreachable!()
    };
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_id, "alice");
    assert_eq!(users[0].user_name, "name of alice");
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].stream_id, "alice-main");
    assert_eq!(streams[0].user_id, "alice");

    // alice asked for user updates: she hears of bob.
    let m = a.recv().await;
    let ServerMessage::UserUpdate {
        update_type, users, ..
    } = m
    else {
        panic!("{m:?}")
    };
    assert_eq!(update_type, UpdateType::Add);
    assert_eq!(users[0].user_id, "bob");
    srv.stop().await;
}

#[tokio::test]
async fn user_updates_go_only_to_sessions_that_asked() {
    let srv = TestServer::default().await;
    let (mut quiet, _) = Client::login(&srv, "r", "quiet", false).await;
    let (mut loud, _) = Client::login(&srv, "r", "loud", true).await;
    let (_c, _) = Client::login(&srv, "r", "carol", false).await;
    let m = loud.recv().await;
    assert!(
        matches!(
            m,
            ServerMessage::UserUpdate {
                update_type: UpdateType::Add,
                ..
            }
        ),
        "{m:?}"
    );
    // A stream update reaches everyone, so the quiet one's next message must be it, not a user update.
    let (mut d, _) = Client::login(&srv, "r", "dave", false).await;
    d.request(json!({"type":"publish","streamId":"d1"})).await;
    let m = quiet.recv().await;
    assert!(
        matches!(m, ServerMessage::StreamUpdate { .. }),
        "quiet got {m:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn bad_tokens_get_their_codes() {
    let srv = TestServer::default().await;
    let mut c = Client::connect(&srv).await;
    let good = token("u1", Some("room1"), all(), 600);

    // tampered: flip one character in the middle
    let mut bytes = good.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", &tampered)).await),
        1001001
    );
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", "garbage")).await),
        1001001
    );
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", "")).await),
        1001001
    );
    // signed with another app's secret
    let foreign = token_for(APP, SECRET2, "u1", Some("room1"), all(), 600, &[]);
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", &foreign)).await),
        1001001
    );
    // expired (beyond the 30 s skew)
    let old = token("u1", Some("room1"), all(), -100);
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", &old)).await),
        1001002
    );
    // wrong room
    assert_eq!(
        error_code(&c.request(login_json("room2", "u1", &good)).await),
        1001006
    );
    // wrong user
    assert_eq!(
        error_code(&c.request(login_json("room1", "u2", &good)).await),
        1001007
    );
    // no login privilege
    let nologin = token(
        "u1",
        None,
        Privileges {
            login: false,
            publish: true,
            play: true,
        },
        600,
    );
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", &nologin)).await),
        1001003
    );
    // legacy CBC refused by default
    let req = roomcam::auth::MintRequest {
        app_id: APP,
        user_id: "u1".into(),
        room_id: None,
        privileges: all(),
        stream_ids: vec![],
        now_unix: now_unix(),
        ttl_secs: 600,
    };
    let cbc =
        roomcam::auth::token04::mint_legacy_cbc(&req, SECRET, &mut rand::thread_rng()).unwrap();
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", &cbc)).await),
        1001013
    );
    // wrong app id
    let m = c
        .request(
            json!({"type":"login","version":1,"appId":5,"roomId":"r","userId":"u1","token":good}),
        )
        .await;
    assert_eq!(error_code(&m), 1001008);
    // no credentials at all
    let m = c
        .request(json!({"type":"login","version":1,"appId":APP,"roomId":"r","userId":"u1"}))
        .await;
    assert_eq!(error_code(&m), 1001014);
    // revoked user
    let banned = token("banned", None, all(), 600);
    assert_eq!(
        error_code(&c.request(login_json("room1", "banned", &banned)).await),
        1001011
    );
    // after all that, the same connection still logs in with a good token
    let m = c.request(login_json("room1", "u1", &good)).await;
    assert!(matches!(m, ServerMessage::LoginResult { .. }), "{m:?}");
    // and a second login on the same connection is refused
    assert_eq!(
        error_code(&c.request(login_json("room1", "u1", &good)).await),
        1000007
    );
    assert!(srv.metric("roomcam_auth_failures_total").await >= 10.0);
    srv.stop().await;
}

#[tokio::test]
async fn legacy_cbc_tokens_work_when_allowed() {
    let srv = TestServer::start("allow_legacy_cbc_tokens = true", "").await;
    let mut c = Client::connect(&srv).await;
    let req = roomcam::auth::MintRequest {
        app_id: APP,
        user_id: "old".into(),
        room_id: None,
        privileges: all(),
        stream_ids: vec![],
        now_unix: now_unix(),
        ttl_secs: 600,
    };
    let cbc =
        roomcam::auth::token04::mint_legacy_cbc(&req, SECRET, &mut rand::thread_rng()).unwrap();
    let m = c.request(login_json("room1", "old", &cbc)).await;
    assert!(matches!(m, ServerMessage::LoginResult { .. }), "{m:?}");
    srv.stop().await;
}

#[tokio::test]
async fn app_sign_is_a_challenge_response() {
    let srv = TestServer::default().await;
    let mut c = Client::connect(&srv).await;
    // a proof over another nonce (a replay from another connection) fails
    let replay = roomcam::auth::appsign::proof(APP_SIGN, "00ff", APP, "r", "dev").unwrap();
    let m = c.request(json!({"type":"login","version":1,"appId":APP,"roomId":"r","userId":"dev","appSignProof":replay})).await;
    assert_eq!(error_code(&m), 1001010);
    let proof = roomcam::auth::appsign::proof(APP_SIGN, &c.nonce, APP, "r", "dev").unwrap();
    let m = c.request(json!({"type":"login","version":1,"appId":APP,"roomId":"r","userId":"dev","appSignProof":proof})).await;
    assert!(
        matches!(
            m,
            ServerMessage::LoginResult {
                token_expire: None,
                ..
            }
        ),
        "{m:?}"
    );
    // APP2 does not allow app sign
    let mut d = Client::connect(&srv).await;
    let proof = roomcam::auth::appsign::proof(APP_SIGN, &d.nonce, APP2, "r", "dev").unwrap();
    let m = d.request(json!({"type":"login","version":1,"appId":APP2,"roomId":"r","userId":"dev","appSignProof":proof})).await;
    assert_eq!(error_code(&m), 1001009);
    srv.stop().await;
}

#[tokio::test]
async fn id_rules_and_version_are_enforced() {
    let srv = TestServer::default().await;
    let mut c = Client::connect(&srv).await;
    let t = token("u1", None, all(), 600);
    for (room, user, name, code) in [
        ("", "u1", "n", 1002001),
        ("has space", "u1", "n", 1002001),
        (&"r".repeat(129) as &str, "u1", "n", 1002001),
        ("r", "", "n", 1002002),
        ("r", &"u".repeat(65) as &str, "n", 1002002),
        ("r", "u\"1", "n", 1002002),
        ("r", "u1", "bad\u{7}name", 1002003),
    ] {
        let m = c.request(json!({"type":"login","version":1,"appId":APP,"roomId":room,"userId":user,"userName":name,"token":t})).await;
        assert_eq!(
            error_code(&m),
            code,
            "room {room:?} user {user:?} name {name:?}"
        );
    }
    let m = c
        .request(
            json!({"type":"login","version":99,"appId":APP,"roomId":"r","userId":"u1","token":t}),
        )
        .await;
    assert_eq!(error_code(&m), 1000005);
    // requests before login
    assert_eq!(
        error_code(&c.request(json!({"type":"publish","streamId":"s"})).await),
        1000006
    );
    assert_eq!(
        error_code(&c.request(json!({"type":"play","streamId":"s"})).await),
        1000006
    );
    assert_eq!(
        error_code(&c.request(json!({"type":"offer","sdp":"v=0"})).await),
        1000006
    );
    // a valid login still works afterwards
    let m = c
        .request(
            json!({"type":"login","version":1,"appId":APP,"roomId":"r","userId":"u1","token":t}),
        )
        .await;
    assert!(matches!(m, ServerMessage::LoginResult { .. }));
    // stream id rules
    for bad in ["", "a.b", "has space"] {
        assert_eq!(
            error_code(&c.request(json!({"type":"publish","streamId":bad})).await),
            1003001
        );
    }
    let long = "s".repeat(257);
    assert_eq!(
        error_code(&c.request(json!({"type":"publish","streamId":long})).await),
        1003001
    );
    srv.stop().await;
}
