//! The device's side of TLS, over real sockets and real TLS: it joins over `wss://` trusting the
//! CA it was told about (`[server] ca_file`), refuses a server whose certificate another CA
//! signed or that names another host (a clear error, code 1005005, and not one byte of
//! application data sent), and never sends a token or an app-sign proof over plain `ws://` to a
//! non-loopback address (checked in a private network namespace with a veth pair).

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::server::*;
use common::synthetic::{Recorded, SyntheticBackend};
use common::tls::*;
use roomcam::engine::{
    Credential, Engine, EngineError, EngineOptions, EngineProfile, Event, RoomState,
    RoomStateReason,
};
use roomcam::protocol::ErrorCode;

fn profile(user: &str, credential: Credential) -> EngineProfile {
    EngineProfile {
        app_id: APP,
        user_id: user.into(),
        user_name: user.into(),
        credential,
        scenario: 0,
    }
}

async fn engine_for(
    url: &str,
    ca_file: Option<&Path>,
    allow_insecure: bool,
    credential: Credential,
) -> Result<(Engine, tokio::sync::mpsc::UnboundedReceiver<Event>), EngineError> {
    let mut opts = EngineOptions::new(url);
    opts.media_bind = "127.0.0.1:0".parse().unwrap();
    opts.ca_file = ca_file.map(Path::to_path_buf);
    opts.allow_insecure = allow_insecure;
    Engine::create(
        profile("pi-tls", credential),
        opts,
        Box::new(SyntheticBackend::new(Recorded::default())),
    )
    .await
}

/// The first room state event that is a login result (logged in, or gave up).
async fn login_outcome(ev: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let e = ev.recv().await.expect("event stream ended");
            if let Event::RoomStateUpdate { reason, .. } = &e
                && matches!(
                    reason,
                    RoomStateReason::Logined | RoomStateReason::LoginFailed
                )
            {
                return e;
            }
        }
    })
    .await
    .expect("no login outcome within the hang guard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_joins_over_wss_trusting_the_ca_it_was_told_about() {
    let dir = tmpdir("tls-join");
    let (_, cert, key) = cert_pair(&dir, "server", &["localhost", "127.0.0.1"]);
    let srv = TestServer::start("", &format!("[tls]\ncert = {cert:?}\nkey = {key:?}\n")).await;
    let url = format!("wss://127.0.0.1:{}/ws", srv.addr.port());
    let (e, mut ev) = engine_for(
        &url,
        Some(&cert),
        false,
        Credential::Token(token("pi-tls", None, all(), 3600)),
    )
    .await
    .expect("engine");
    e.login_room("room1", true, None).unwrap();
    match login_outcome(&mut ev).await {
        Event::RoomStateUpdate {
            state,
            reason,
            error_code,
            ..
        } => {
            assert_eq!(reason, RoomStateReason::Logined, "code {error_code}");
            assert_eq!(state, RoomState::Connected);
        }
        other => panic!("{other:?}"),
    }
    // The same port speaks no plain HTTP: a plain request gets no HTTP answer.
    let plain = tokio::time::timeout(HANG_GUARD, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("plain request hang");
    assert!(!plain.starts_with(b"HTTP/1.1 200"), "plain HTTP was served");
    e.destroy().await;
    srv.stop().await;
}

/// Connects a device trusting `trusted` to a recording TLS server presenting `served`, and
/// returns the login outcome and what the server saw.
async fn refused(trusted: &Path, served: (&Path, &Path)) -> (u32, String, Seen) {
    let (addr, seen) = recording_server("127.0.0.1:0".parse().unwrap(), Some(served)).await;
    let secret_token = token("pi-tls", None, all(), 3600);
    let (e, mut ev) = engine_for(
        &format!("wss://127.0.0.1:{}/ws", addr.port()),
        Some(trusted),
        false,
        Credential::Token(secret_token.clone()),
    )
    .await
    .expect("engine");
    e.login_room("room1", true, None).unwrap();
    let (code, extended) = match login_outcome(&mut ev).await {
        Event::RoomStateUpdate {
            state,
            reason,
            error_code,
            extended_data,
            ..
        } => {
            assert_eq!(reason, RoomStateReason::LoginFailed);
            assert_eq!(state, RoomState::Disconnected);
            (error_code, extended_data)
        }
        other => panic!("{other:?}"),
    };
    e.destroy().await;
    // The server side records the failed handshake on its own task: wait for it. Application
    // bytes can only follow a completed handshake, so once it has failed none can come.
    tokio::time::timeout(HANG_GUARD, async {
        while seen.lock().unwrap().handshake_errors.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server never saw the handshake fail");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        !String::from_utf8_lossy(&seen.bytes).contains(&secret_token),
        "the token reached the server"
    );
    (code, extended, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_refuses_a_server_signed_by_another_ca_before_sending_anything() {
    let dir = tmpdir("tls-refuse");
    let (_, ca_a, _) = cert_pair(&dir, "a", &["localhost", "127.0.0.1"]);
    // Another CA of the same name (a regenerated self-signed certificate), and one of another
    // name.
    for (name, hosts) in [
        ("b", &["localhost", "127.0.0.1"][..]),
        ("c", &["127.0.0.1"][..]),
    ] {
        let (_, cert_b, key_b) = cert_pair(&dir, name, hosts);
        let (code, msg, seen) = refused(&ca_a, (&cert_b, &key_b)).await;
        assert_eq!(code, ErrorCode::TlsCertificateRejected.code(), "{msg}");
        assert!(msg.contains("127.0.0.1"), "{msg}");
        assert!(msg.contains("unknown issuer"), "{msg}");
        assert!(msg.contains("a.crt"), "names the trusted CA file: {msg}");
        // The device reached the server, and the handshake is all that happened: no HTTP
        // upgrade, no login frame, not one application byte.
        assert!(seen.connections >= 1, "{seen:?}");
        assert!(!seen.handshake_errors.is_empty(), "{seen:?}");
        assert!(
            seen.bytes.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&seen.bytes)
        );
    }

    // Control: the same recorder with the trusted certificate does get the upgrade request,
    // so an empty record above means nothing was sent.
    let (addr, seen) = recording_server(
        "127.0.0.1:0".parse().unwrap(),
        Some((&ca_a, &dir.join("a.key"))),
    )
    .await;
    let (e, _ev) = engine_for(
        &format!("wss://127.0.0.1:{}/ws", addr.port()),
        Some(&ca_a),
        false,
        Credential::Token(token("pi-tls", None, all(), 3600)),
    )
    .await
    .unwrap();
    e.login_room("room1", true, None).unwrap();
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            if String::from_utf8_lossy(&seen.lock().unwrap().bytes).contains("GET /ws") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the recorder never saw the upgrade request");
    e.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_refuses_a_certificate_for_another_name() {
    let dir = tmpdir("tls-name");
    let (_, cert, key) = cert_pair(&dir, "other", &["other.example"]);
    let (code, msg, seen) = refused(&cert, (&cert, &key)).await;
    assert_eq!(code, ErrorCode::TlsCertificateRejected.code(), "{msg}");
    assert!(msg.contains("name mismatch"), "{msg}");
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(seen.bytes.is_empty());
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_clear_error_at_create() {
    let dir = tmpdir("tls-cafile");
    std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
    for (path, want) in [
        (dir.join("junk.pem"), "no PEM certificate"),
        (dir.join("missing.pem"), "missing.pem"),
    ] {
        let err = match engine_for(
            "wss://127.0.0.1:1/ws",
            Some(&path),
            false,
            Credential::Token("t".into()),
        )
        .await
        {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a bad ca_file was accepted"),
        };
        assert!(err.contains("ca_file") && err.contains(want), "{err}");
    }
}

/// Inside the namespace: a plain TCP recorder on a veth address, and devices pointed at it.
async fn credentials_stay_off_plain_ws() {
    let bind: SocketAddr = format!("{VETH_A}:0").parse().unwrap();
    let (addr, seen) = recording_server(bind, None).await;
    assert!(!addr.ip().is_loopback());
    let url = format!("ws://{addr}/ws");
    let secret_token = token("pi-tls", None, all(), 3600);
    for cred in [
        Credential::Token(secret_token.clone()),
        Credential::AppSign(APP_SIGN.into()),
    ] {
        let err = match engine_for(&url, None, false, cred).await {
            Err(e) => e,
            Ok(_) => panic!("an engine for {url} was created"),
        };
        assert!(matches!(err, EngineError::Insecure { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(VETH_A) && text.contains("allow_insecure"),
            "{text}"
        );
    }
    // The refusal came before any connect: the recorder never saw a connection.
    assert_eq!(seen.lock().unwrap().connections, 0);

    // Control: allowed explicitly, the same device does connect and sends its login with the
    // token, which the recorder sees (so a zero above is a real "never sent"). The recorder
    // never answers `hello`, so the device sends its upgrade request only; the token goes in
    // the login after hello. Answer as a minimal server would to see the token itself.
    let listener = tokio::net::TcpListener::bind(format!("{VETH_A}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        let (tcp, peer) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let hello = serde_json::json!({"type":"hello","version":1,"nonce":"00",
            "heartbeatIntervalMs":10000,"sessionTimeoutMs":30000});
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            hello.to_string().into(),
        ))
        .await
        .unwrap();
        let first = ws.next().await.unwrap().unwrap();
        (peer, first.into_text().unwrap().to_string())
    });
    let (e, _ev) = engine_for(
        &format!("ws://{addr}/ws"),
        None,
        true,
        Credential::Token(secret_token.clone()),
    )
    .await
    .expect("allow_insecure = true creates the engine");
    e.login_room("room1", true, None).unwrap();
    let (peer, login) = tokio::time::timeout(HANG_GUARD, server)
        .await
        .expect("no login over plain ws")
        .unwrap();
    assert!(!peer.ip().is_loopback(), "{peer}");
    assert!(login.contains(&secret_token), "{login}");
    e.destroy().await;
}

#[test]
fn a_token_is_never_sent_over_plain_ws_to_a_non_loopback_address() {
    if in_private_netns("a_token_is_never_sent_over_plain_ws_to_a_non_loopback_address") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(credentials_stay_off_plain_ws());
    }
}
