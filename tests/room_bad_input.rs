//! Bad input of every kind: each gets a clear error, the server never panics or leaks, and the
//! sessions it does not concern carry on.

mod common;

use std::time::Duration;

use common::server::*;
use futures_util::SinkExt;
use roomcam::protocol::{ErrorCode, ServerMessage};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_unknown_oversized_and_binary_frames_get_errors() {
    let srv = TestServer::start("", "[limits]\nmessage_bytes = 2048\n").await;
    let (mut bystander, _) = Client::login(&srv, "room1", "bystander", false).await;
    let (mut c, _) = Client::login(&srv, "room1", "c", false).await;
    for (frame, code) in [
        ("{", 1000001),
        ("", 1000001),
        ("null", 1000001),
        ("[1,2,3]", 1000001),
        (r#"{"type":"publish"}"#, 1000001),
        (r#"{"type":"publish","streamId":5}"#, 1000001),
        (r#"{"type":"heartbeat","surprise":true}"#, 1000001),
        (
            r#"{"type":"login","version":1,"appId":-1,"roomId":"r","userId":"u"}"#,
            1000001,
        ),
        (r#"{"noType":1}"#, 1000001),
        (r#"{"type":"dance","moves":3}"#, 1000002),
        (r#"{"type":"publish","streamId":"s""#, 1000001),
    ] {
        c.send_text(frame.to_string()).await;
        assert_eq!(error_code(&c.recv().await), code, "frame {frame:?}");
    }
    let big = json!({"type":"publish","streamId":"s","extraInfo":"x".repeat(3000)}).to_string();
    c.send_text(big).await;
    assert_eq!(error_code(&c.recv().await), 1000003);
    c.ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(error_code(&c.recv().await), 1000010);
    // the session is still logged in and works
    assert!(matches!(
        c.request(json!({"type":"publish","streamId":"ok"})).await,
        ServerMessage::PublishResult { .. }
    ));
    // and the bystander heard only about the stream
    let m = bystander.recv().await;
    assert!(matches!(m, ServerMessage::StreamUpdate { .. }), "{m:?}");
    // a frame far above the limit is refused by the socket layer: that connection ends, no other
    let huge = "y".repeat(64 * 1024 + 10);
    let _ = c.ws.send(Message::Text(huge.into())).await;
    c.expect_closed().await;
    let m = bystander.recv().await;
    assert!(
        matches!(
            m,
            ServerMessage::StreamUpdate {
                update_type: roomcam::protocol::UpdateType::Delete,
                ..
            }
        ),
        "{m:?}"
    );
    assert!(matches!(
        bystander.request(json!({"type":"heartbeat"})).await,
        ServerMessage::HeartbeatAck { .. }
    ));
    srv.stop().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_dropped_and_others_carry_on() {
    let srv = TestServer::start("", "[limits]\nmessages_per_second = 20\n").await;
    let (mut calm, _) = Client::login(&srv, "room1", "calm", false).await;
    let (mut flood, _) = Client::login(&srv, "room1", "flood", false).await;
    flood
        .request(json!({"type":"publish","streamId":"flood-cam"}))
        .await;
    calm.recv().await; // ADD
    for _ in 0..500 {
        if flood
            .ws
            .send(Message::Text(
                json!({"type":"heartbeat"}).to_string().into(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut saw_rate_error = false;
    let mut kicked = false;
    while let Some(m) = flood.try_recv(HANG_GUARD).await {
        match m {
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            } => saw_rate_error = true,
            ServerMessage::Kicked {
                code: ErrorCode::RateLimited,
                ..
            } => kicked = true,
            _ => {}
        }
    }
    assert!(saw_rate_error, "no rate-limit error");
    assert!(kicked, "flooder was not dropped");
    // the flooder's stream is gone, and the calm session is served
    let m = calm.recv().await;
    assert!(matches!(m, ServerMessage::StreamUpdate { .. }), "{m:?}");
    assert!(matches!(
        calm.request(json!({"type":"heartbeat"})).await,
        ServerMessage::HeartbeatAck { .. }
    ));
    assert!(srv.metric("roomcam_kicks_total{code=\"1000004\"}").await >= 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn abrupt_disconnects_mid_login_leak_nothing() {
    let srv = TestServer::default().await;
    for i in 0..20 {
        let mut c = Client::connect(&srv).await;
        let user = format!("u{i}");
        let t = token(&user, None, all(), 600);
        c.send_json(
            json!({"type":"login","version":1,"appId":APP,"roomId":"r","userId":user,"token":t}),
        )
        .await;
        if i % 2 == 0 {
            // drop the TCP stream without a close frame
            let tcp = c.ws.into_inner();
            drop(tcp);
        } else {
            drop(c);
        }
    }
    // half-open HTTP requests and garbage on the port
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let _ = s
            .write_all(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n")
            .await;
        drop(s);
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let _ = s.write_all(&[0xff; 300]).await;
    }
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let users = srv.metric("roomcam_users").await;
        let rooms = srv.metric("roomcam_rooms").await;
        let sessions = srv.metric("roomcam_sessions").await;
        if users == 0.0 && rooms == 0.0 && sessions == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leak: {users} users {rooms} rooms {sessions} sessions"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut c, _) = Client::login(&srv, "r", "after", false).await;
    assert!(matches!(
        c.request(json!({"type":"heartbeat"})).await,
        ServerMessage::HeartbeatAck { .. }
    ));
    srv.stop().await;
}
