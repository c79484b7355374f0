//! `roomcam demo` (the README's main job) starts a room service that answers, mints dev tokens,
//! and accepts a login with one.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn demo_serves_and_mints_dev_tokens() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomcam"))
        .args(["demo", "--listen", "127.0.0.1:0", "--status", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(std::env::temp_dir().join("roomcam-demo-test.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The first line with a URL (keep reading the rest, so the demo never writes to a closed pipe).
    let first = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                let log =
                    std::fs::read_to_string(std::env::temp_dir().join("roomcam-demo-test.log"))
                        .unwrap_or_default();
                panic!("demo ended its output without a URL; stdout: {seen:?}; stderr: {log}");
            }
            seen.push_str(&line);
            if line.contains("http://") {
                std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
                return line;
            }
        }
    });
    let line = tokio::time::timeout(common::server::HANG_GUARD, first)
        .await
        .expect("demo printed nothing")
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("no URL printed")
        .to_string();
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (status, body) = common::server::http_get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = common::server::http_get(
        addr,
        "/api/dev-token?app_id=1234567890&user_id=me&room_id=room1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["token"].as_str().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let _hello = ws.next().await.unwrap().unwrap();
    let login = serde_json::json!({"type":"login","version":1,"appId":1234567890u32,"roomId":"room1","userId":"me","token":token});
    ws.send(Message::Text(login.to_string().into()))
        .await
        .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert!(
        reply.to_text().unwrap().contains("\"loginResult\""),
        "{reply:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
