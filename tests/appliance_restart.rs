//! The appliance survives its room service: two `roomcam` processes with auto_join call each
//! other through a `roomcam-server` process; the server is killed and started again, and both
//! devices are publishing and playing again by themselves. Then SIGTERM makes a device log out
//! cleanly: a peer sees its stream DELETEd before the device's process ends.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{APP, Client, SECRET, http_get, token_for};
use roomcam::protocol::{ServerMessage, UpdateType};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("roomcam-restart-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn log_file(name: &str) -> std::fs::File {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/logs");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::File::create(p.join(name)).unwrap()
}

fn start_server(port: u16) -> Child {
    let cfg = dir().join("server.toml");
    std::fs::write(&cfg, format!(
        "listen = \"127.0.0.1:{port}\"\n[media]\nudp_port = 0\n[session]\nheartbeat_interval_secs = 1\ntimeout_secs = 5\n[[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\n"
    )).unwrap();
    Command::new(env!("CARGO_BIN_EXE_roomcam-server"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log_file(&format!(
            "restart-server-{}.log",
            Instant::now().elapsed().as_nanos()
        )))
        .spawn()
        .unwrap()
}

fn start_device(user: &str, port: u16, status: u16) -> Child {
    let cfg = dir().join(format!("{user}.toml"));
    let token = token_for(
        APP,
        SECRET,
        user,
        None,
        roomcam::auth::Privileges::default(),
        3600,
        &[],
    );
    std::fs::write(&cfg, format!(
        "[server]\nurl = \"ws://127.0.0.1:{port}/ws\"\n[identity]\napp_id = {APP}\nuser_id = \"{user}\"\ntoken = \"{token}\"\n[room]\nid = \"room1\"\n\
         [video]\nsource = \"test\"\nwidth = 320\nheight = 240\nencoder = \"x264enc\"\n[audio]\ncapture = \"test\"\nplayback = \"none\"\n\
         [display]\nsink = \"none\"\n[status]\nlisten = \"127.0.0.1:{status}\"\n"
    )).unwrap();
    Command::new(env!("CARGO_BIN_EXE_roomcam"))
        .arg("--config")
        .arg(&cfg)
        .env("ROOMCAM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file(&format!("restart-{user}.log")))
        .spawn()
        .unwrap()
}

async fn status(port: u16) -> Option<Value> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if tokio::net::TcpStream::connect(addr).await.is_err() {
        return None;
    }
    let (code, body) = http_get(addr, "/status").await;
    (code == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Waits (hang guard 60 s) until the device publishes and plays `peer_stream`, decoding more
/// than `above` pictures of it; returns the decoded count.
async fn in_call(port: u16, peer_stream: &str, above: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = status(port).await {
            let publishing = s["publisher"]["state"] == "PUBLISHING";
            let decoded = s["players"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["stream_id"] == peer_stream))
                .filter(|p| p["state"] == "PLAYING")
                .and_then(|p| p["video_frames_decoded"].as_u64());
            if let Some(d) = decoded
                && publishing
                && d > above
            {
                return d;
            }
            assert!(Instant::now() < deadline, "not back in the call: {s}");
        }
        assert!(
            Instant::now() < deadline,
            "no status from the device on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sigterm(c: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_come_back_after_a_server_restart_and_log_out_on_sigterm() {
    let port = free_port();
    let (sa, sb) = (free_port(), free_port());
    let mut server = start_server(port);
    let mut a = start_device("pi-a", port, sa);
    let mut b = start_device("pi-b", port, sb);
    in_call(sa, "pi-b-main", 30).await;
    in_call(sb, "pi-a-main", 30).await;

    // the server dies and comes back on the same address
    server.kill().unwrap();
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut server = start_server(port);
    in_call(sa, "pi-b-main", 10).await;
    let resumed = in_call(sb, "pi-a-main", 10).await;
    assert!(resumed > 10);
    // the process never exited
    assert!(a.try_wait().unwrap().is_none() && b.try_wait().unwrap().is_none());

    // a watcher in the room sees A's DELETE before A's process ends
    let srv = common::server::TestServer::external(format!("127.0.0.1:{port}").parse().unwrap());
    let mut w = Client::connect(&srv).await;
    let t = token_for(
        APP,
        SECRET,
        "watcher",
        None,
        roomcam::auth::Privileges::default(),
        600,
        &[],
    );
    let m = w.request(json!({"type":"login","version":1,"appId":APP,"roomId":"room1","userId":"watcher","token":t})).await;
    let ServerMessage::LoginResult { streams, .. } = m else {
        panic!("{m:?}")
    };
    assert!(streams.iter().any(|s| s.stream_id == "pi-a-main"));
    sigterm(&a);
    w.recv_until(|m| matches!(m, ServerMessage::StreamUpdate { update_type: UpdateType::Delete, streams, .. } if streams.iter().any(|s| s.stream_id == "pi-a-main"))).await;
    let deleted_at = Instant::now();
    let exited_at = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = a.try_wait().unwrap() {
                assert!(st.success(), "device exited with {st}");
                break Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "device did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    assert!(
        deleted_at <= exited_at,
        "the DELETE came after the process ended"
    );
    sigterm(&b);
    let _ = b.wait();
    server.kill().unwrap();
    let _ = server.wait();
}
