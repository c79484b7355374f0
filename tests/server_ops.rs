//! Operations: health, Prometheus metrics, graceful shutdown, heartbeat timeout, the dev-token
//! endpoint, and the `roomcam-server token` command.

mod common;

use std::process::Command;

use common::server::*;
use roomcam::auth::token04;
use roomcam::protocol::{ErrorCode, ServerMessage, UpdateType};
use serde_json::json;

#[tokio::test]
async fn healthz_and_metrics() {
    let srv = TestServer::default().await;
    assert_eq!(srv.http_get("/healthz").await, (200, "ok\n".into()));
    let (mut a, _) = Client::login(&srv, "r", "a", false).await;
    a.request(json!({"type":"publish","streamId":"s"})).await;
    let (status, body) = srv.http_get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "# TYPE roomcam_sessions gauge",
        "roomcam_rooms 1",
        "roomcam_streams 1",
        "roomcam_messages_total{type=\"login\"} 1",
        "roomcam_messages_total{type=\"publish\"} 1",
        "roomcam_auth_failures_total 0",
    ] {
        assert!(body.contains(needle), "{needle} missing in\n{body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_tells_every_session() {
    let srv = TestServer::default().await;
    let (mut a, _) = Client::login(&srv, "r", "a", false).await;
    let mut idle = Client::connect(&srv).await;
    srv.stop().await;
    let m = a.recv().await;
    assert!(
        matches!(
            m,
            ServerMessage::Kicked {
                code: ErrorCode::ServerShuttingDown,
                ..
            }
        ),
        "{m:?}"
    );
    a.expect_closed().await;
    let m = idle.recv().await;
    assert!(
        matches!(
            m,
            ServerMessage::Kicked {
                code: ErrorCode::ServerShuttingDown,
                ..
            }
        ),
        "{m:?}"
    );
}

#[tokio::test]
async fn a_silent_session_times_out_and_its_streams_are_deleted() {
    let srv = TestServer::start(
        "",
        "[session]\nheartbeat_interval_secs = 1\ntimeout_secs = 2\n",
    )
    .await;
    let (mut ghost, _) = Client::login(&srv, "r", "ghost", false).await;
    ghost
        .request(json!({"type":"publish","streamId":"ghost-cam"}))
        .await;
    let (mut alive, _) = Client::login(&srv, "r", "alive", true).await;
    // alive keeps sending heartbeats; ghost says nothing (but its socket stays open)
    let kick = async {
        loop {
            if let Some(m) = ghost.try_recv(std::time::Duration::from_millis(100)).await {
                return m;
            }
        }
    };
    let watcher = async {
        loop {
            alive.send_json(json!({"type":"heartbeat"})).await;
            if let Some(ServerMessage::StreamUpdate {
                update_type: UpdateType::Delete,
                streams,
                ..
            }) = alive.try_recv(std::time::Duration::from_millis(500)).await
            {
                return streams;
            }
        }
    };
    let (k, deleted) = tokio::time::timeout(HANG_GUARD, async { tokio::join!(kick, watcher) })
        .await
        .expect("no timeout happened");
    assert!(
        matches!(
            k,
            ServerMessage::Kicked {
                code: ErrorCode::HeartbeatTimeout,
                ..
            }
        ),
        "{k:?}"
    );
    assert_eq!(deleted[0].stream_id, "ghost-cam");
    assert_eq!(srv.metric("roomcam_users").await, 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn dev_token_endpoint_is_off_by_default_and_mints_when_on() {
    let srv = TestServer::default().await;
    let (status, _) = srv
        .http_get(&format!("/api/dev-token?app_id={APP}&user_id=web"))
        .await;
    assert_eq!(status, 404);
    srv.stop().await;
    let srv = TestServer::start("dev_token_endpoint = true", "").await;
    let (status, body) = srv
        .http_get(&format!(
            "/api/dev-token?app_id={APP}&user_id=web&room_id=room1"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = token04::decode(
        v["token"].as_str().unwrap(),
        SECRET,
        now_unix(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(c.user_id, "web");
    assert_eq!(c.room_id.as_deref(), Some("room1"));
    let (status, _) = srv.http_get("/api/dev-token?app_id=5&user_id=web").await;
    assert_eq!(status, 400);
    let (status, _) = srv
        .http_get(&format!("/api/dev-token?app_id={APP}&user_id=bad%20id"))
        .await;
    assert_eq!(status, 400);
    srv.stop().await;
}

#[test]
fn token_command_mints_decodable_tokens_and_refuses_bad_flags() {
    let bin = env!("CARGO_BIN_EXE_roomcam-server");
    let out = Command::new(bin)
        .args([
            "token",
            "--app-id",
            "1234567890",
            "--server-secret",
            SECRET,
            "--user-id",
            "pi-1",
            "--room-id",
            "room1",
            "--ttl",
            "600",
            "--privilege",
            "login,play",
            "--stream-id",
            "a",
            "--stream-id",
            "b",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap();
    let c = token04::decode(t.trim(), SECRET, now_unix(), Default::default()).unwrap();
    assert_eq!(c.app_id, 1234567890);
    assert_eq!(c.room_id.as_deref(), Some("room1"));
    assert!(c.privileges.login && c.privileges.play && !c.privileges.publish);
    assert_eq!(c.stream_ids, vec!["a", "b"]);
    assert!(c.expire - now_unix() <= 600 && c.expire - now_unix() > 500);
    for (args, needle) in [
        (vec!["--server-secret", "short"], "32 characters"),
        (vec!["--privilege", "login,fly"], "fly"),
        (vec!["--ttl", "0"], "--ttl"),
    ] {
        let mut full = vec!["token", "--app-id", "1", "--user-id", "u"];
        if !args.contains(&"--server-secret") {
            full.extend(["--server-secret", SECRET]);
        }
        full.extend(args.iter().copied());
        let out = Command::new(bin).args(&full).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{full:?}: {err}");
    }
}

#[test]
fn server_refuses_a_bad_config_with_the_key_and_line() {
    let dir = std::env::temp_dir().join(format!("roomcam-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    std::fs::write(&p, format!("listen = \"127.0.0.1:0\"\nlisen = 3\n[[apps]]\napp_id = 1\nserver_secret = \"{SECRET}\"\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roomcam-server"))
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lisen") && err.contains("line 2") && err.contains("bad.toml"),
        "{err}"
    );
}
