//! `[limits]`: users per room, rooms per app and streams per session are clear errors that
//! disturb no one else.

mod common;

use common::server::*;
use roomcam::protocol::ServerMessage;
use serde_json::json;

#[tokio::test]
async fn limits_are_errors_not_crashes() {
    let srv = TestServer::start(
        "",
        "[limits]\nusers_per_room = 2\nrooms_per_app = 2\nstreams_per_session = 1\n",
    )
    .await;
    let (mut a, _) = Client::login(&srv, "r1", "a", true).await;
    let (_b, _) = Client::login(&srv, "r1", "b", false).await;
    a.recv().await; // b's ADD
    let mut c = Client::connect(&srv).await;
    let t = token("c", None, all(), 600);
    let login = |room: &str| json!({"type":"login","version":1,"appId":APP,"roomId":room,"userId":"c","token":t});
    assert_eq!(error_code(&c.request(login("r1")).await), 1002004);
    let (_d, _) = Client::login(&srv, "r2", "d", false).await;
    assert_eq!(error_code(&c.request(login("r3")).await), 1002005);
    // a re-login of a user already in a full room takes its own slot back
    let (_b2, r) = Client::login(&srv, "r1", "b", false).await;
    assert!(matches!(r, ServerMessage::LoginResult { .. }));
    // streams per session
    a.recv_until(|m| {
        matches!(
            m,
            ServerMessage::UserUpdate {
                update_type: roomcam::protocol::UpdateType::Add,
                ..
            }
        )
    })
    .await;
    a.request(json!({"type":"publish","streamId":"s1"})).await;
    assert_eq!(
        error_code(&a.request(json!({"type":"publish","streamId":"s2"})).await),
        1003004
    );
    // everyone else carries on
    let (mut e, _) = Client::login(&srv, "r2", "e", false).await;
    assert!(matches!(
        e.request(json!({"type":"heartbeat"})).await,
        ServerMessage::HeartbeatAck { .. }
    ));
    srv.stop().await;
}
