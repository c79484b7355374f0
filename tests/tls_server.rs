//! The room service's side of TLS, over real sockets: a certificate reload (the code path SIGHUP
//! takes) serves the new certificate to new connections while open ones carry on, and a bad
//! new pair keeps the old one; `roomcam-server selfsign` and `check`; the dev-token endpoint
//! answers loopback callers only, in the server and in `roomcam demo`, which serves HTTPS
//! beyond loopback and prints the certificate's fingerprint.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::server::*;
use common::tls::*;
use futures_util::{SinkExt, StreamExt};
use roomcam::server::{self, Control, ServerConfig};
use tokio_tungstenite::tungstenite::Message;

fn config_text(listen: &str, top: &str, cert: &Path, key: &Path) -> String {
    format!(
        "listen = \"{listen}\"\n{top}\n[media]\nudp_port = 0\n[tls]\ncert = {cert:?}\nkey = {key:?}\n\
         [[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\n"
    )
}

async fn start_with_control(
    config: ServerConfig,
) -> (SocketAddr, Control, tokio::sync::oneshot::Sender<()>) {
    let listener = server::bind(&config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let (ctl_tx, ctl_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        server::run_with_control(
            listener,
            config,
            async move {
                let _ = rx.await;
            },
            move |c| {
                let _ = ctl_tx.send(c);
            },
        )
        .await
        .expect("server run");
    });
    (addr, ctl_rx.await.unwrap(), stop)
}

/// A logged-in WebSocket over TLS that trusts any certificate with `fingerprint`.
async fn wss_login(addr: SocketAddr, fingerprint: &str, user: &str) -> WsTls {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tls_connect(tcp, addr, fingerprint).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}/ws"), tls)
        .await
        .unwrap();
    let _hello = ws.next().await.unwrap().unwrap();
    let t = token(user, None, all(), 3600);
    let login = serde_json::json!({"type":"login","version":1,"appId":APP,"roomId":"r","userId":user,"token":t});
    ws.send(Message::Text(login.to_string().into()))
        .await
        .unwrap();
    let reply = next_text(&mut ws).await;
    assert!(reply.contains("\"loginResult\""), "{reply}");
    ws
}

type WsTls =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut WsTls) -> String {
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("no message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    let dir = tmpdir("tls-reload");
    let (a, cert, key) = cert_pair(&dir, "server", &["127.0.0.1"]);
    let text = config_text("127.0.0.1:0", "", &cert, &key);
    let config = ServerConfig::parse(&text, Path::new("t.toml")).unwrap();
    let (addr, control, stop) = start_with_control(config.clone()).await;
    assert_eq!(presented_fingerprint(addr).await, a.fingerprint);
    assert_eq!(
        control.tls_fingerprint().as_deref(),
        Some(a.fingerprint.as_str())
    );
    let mut old = wss_login(addr, &a.fingerprint, "early").await;

    // Renewal: new files in place, then the reload SIGHUP triggers.
    let (b, _, _) = cert_pair(&dir, "renewed", &["127.0.0.1"]);
    b.write(&cert, &key).unwrap();
    control.reload(&config).await.expect("reload");
    assert_eq!(presented_fingerprint(addr).await, b.fingerprint);
    assert_eq!(
        control.tls_fingerprint().as_deref(),
        Some(b.fingerprint.as_str())
    );
    let _new = wss_login(addr, &b.fingerprint, "late").await;
    // The connection made before the reload keeps working on the old certificate.
    old.send(Message::Text(
        serde_json::json!({"type":"heartbeat"}).to_string().into(),
    ))
    .await
    .unwrap();
    // (Anything else the room sends first is skipped; a closed connection fails the test.)
    while !next_text(&mut old).await.contains("\"heartbeatAck\"") {}

    // A broken renewal (half-written key) is refused with the reason; the server keeps
    // serving the certificate it had.
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    let err = control.reload(&config).await.unwrap_err().to_string();
    assert!(err.contains("server.key"), "{err}");
    assert_eq!(presented_fingerprint(addr).await, b.fingerprint);
    let (status, body) = https_get(addr, "/healthz", &b.fingerprint).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let _ = stop.send(());
}

#[tokio::test]
async fn a_bad_certificate_stops_the_server_from_starting_with_a_clear_error() {
    let dir = tmpdir("tls-badstart");
    let (_, cert, _) = cert_pair(&dir, "a", &["127.0.0.1"]);
    let (_, _, other_key) = cert_pair(&dir, "b", &["127.0.0.1"]);
    let text = config_text("127.0.0.1:0", "", &cert, &other_key);
    let config = ServerConfig::parse(&text, Path::new("t.toml")).unwrap();
    let listener = server::bind(&config).await.unwrap();
    let err = server::run(listener, config, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[tls]") && err.contains("b.key") && err.contains("a.crt"),
        "{err}"
    );
}

#[test]
fn selfsign_writes_a_pair_the_server_can_use_and_check_accepts() {
    let dir = tmpdir("tls-selfsign");
    let (cert, key) = (dir.join("s.crt"), dir.join("s.key"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_roomcam-server"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "selfsign",
        "--host",
        "pi.example",
        "--host",
        "192.0.2.9",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256 fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
        .to_string();
    let store = roomcam::server::tls::CertStore::load(&cert, &key).unwrap();
    assert_eq!(store.fingerprint(), printed);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The names are in the certificate (DER holds a DNS name verbatim, an IP as octets).
    let der = &roomcam::server::tls::load_certs(&cert).unwrap()[0];
    assert!(der.windows(10).any(|w| w == b"pi.example"));
    assert!(der.windows(4).any(|w| w == [192, 0, 2, 9]));

    // Existing files are not replaced without --force.
    let before = std::fs::read(&cert).unwrap();
    let out = run(&[
        "selfsign",
        "--host",
        "x",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&cert).unwrap(), before);

    // `check` accepts a public listen address with [tls], and prints the fingerprint.
    let cfg = dir.join("server.toml");
    std::fs::write(&cfg, config_text("0.0.0.0:8443", "", &cert, &key)).unwrap();
    let out = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&printed));
    // ... and refuses a key that does not belong to the certificate.
    let (_, _, other_key) = cert_pair(&dir, "other", &["x"]);
    std::fs::write(&cfg, config_text("0.0.0.0:8443", "", &cert, &other_key)).unwrap();
    let out = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not belong"), "{err}");
}

/// Inside the namespace: a server on all addresses, asked from loopback and from a veth address.
async fn dev_token_for_loopback_only() {
    let dir = tmpdir("tls-devtoken");
    let (a, cert, key) = cert_pair(&dir, "s", &["127.0.0.1", VETH_A]);
    let text = config_text("0.0.0.0:0", "dev_token_endpoint = true", &cert, &key);
    let config = ServerConfig::parse(&text, Path::new("t.toml")).unwrap();
    let (addr, _control, stop) = start_with_control(config).await;
    let q = format!("/api/dev-token?app_id={APP}&user_id=web");
    let lo = SocketAddr::new("127.0.0.1".parse().unwrap(), addr.port());
    let (status, body) = https_get(lo, &q, &a.fingerprint).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"token\""), "{body}");
    let veth = SocketAddr::new(VETH_A.parse().unwrap(), addr.port());
    let (status, body) = https_get(veth, &q, &a.fingerprint).await;
    assert_eq!(status, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("loopback") && msg.contains(VETH_A), "{msg}");
    let _ = stop.send(());
}

#[test]
fn dev_token_endpoint_refuses_non_loopback_callers() {
    if in_private_netns("dev_token_endpoint_refuses_non_loopback_callers") {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(dev_token_for_loopback_only());
    }
}

/// Inside the namespace: `roomcam demo --listen 0.0.0.0:0 --no-device`.
async fn demo_https() {
    let dir = tmpdir("tls-demo");
    let log = dir.join("demo.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomcam"))
        .args(["demo", "--listen", "0.0.0.0:0", "--status", "127.0.0.1:0"])
        .arg("--no-device")
        .arg("--tls-dir")
        .arg(dir.join("certs"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return Err(seen);
            }
            seen.push_str(&line);
            if line.contains("Ctrl-C") {
                std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
                return Ok(seen);
            }
        }
    });
    let out = tokio::time::timeout(HANG_GUARD, lines)
        .await
        .expect("demo printed nothing")
        .unwrap()
        .unwrap_or_else(|seen| {
            panic!(
                "demo ended early: {seen}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    let url = out
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in {out}"));
    let port: u16 = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let fingerprint = out
        .split_whitespace()
        .skip_while(|w| *w != "fingerprint")
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {out}"))
        .to_string();
    // The certificate kept in --tls-dir is the one served and printed.
    let kept = roomcam::server::tls::load_certs(&dir.join("certs/demo.crt")).unwrap();
    assert_eq!(roomcam::server::tls::fingerprint(&kept[0]), fingerprint);
    let lo = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let (status, body) = https_get(lo, "/healthz", &fingerprint).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let q = "/api/dev-token?app_id=1234567890&user_id=me&room_id=room1";
    let (status, body) = https_get(lo, q, &fingerprint).await;
    assert_eq!(status, 200, "{body}");
    let veth = SocketAddr::new(VETH_A.parse().unwrap(), port);
    let (status, body) = https_get(veth, q, &fingerprint).await;
    assert_eq!(status, 403, "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn demo_beyond_loopback_serves_https_and_mints_for_loopback_only() {
    if in_private_netns("demo_beyond_loopback_serves_https_and_mints_for_loopback_only") {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(demo_https());
    }
}

#[tokio::test]
async fn sighup_to_roomcam_server_swaps_the_certificate_without_a_restart() {
    let dir = tmpdir("tls-sighup");
    let (a, cert, key) = cert_pair(&dir, "server", &["127.0.0.1"]);
    // A free port (bound and released: the server binds it next).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        config_text(&format!("127.0.0.1:{port}"), "", &cert, &key),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcam-server"))
        .arg("--config")
        .arg(&cfg)
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = tokio::time::timeout(HANG_GUARD, async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        up.is_ok(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(presented_fingerprint(addr).await, a.fingerprint);

    let (b, _, _) = cert_pair(&dir, "renewed", &["127.0.0.1"]);
    b.write(&cert, &key).unwrap();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    // The signal is handled asynchronously: wait until new handshakes show the new certificate.
    let swapped = tokio::time::timeout(HANG_GUARD, async {
        while presented_fingerprint(addr).await != b.fingerprint {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(swapped.is_ok(), "{text}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server exited: {text}"
    );
    let (status, _) = https_get(addr, "/healthz", &b.fingerprint).await;
    assert_eq!(status, 200);
    child.kill().await.unwrap();
}
