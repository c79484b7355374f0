//! The room service's ICE-TCP listener (`[media] tcp_port`) on loopback: a bad frame (garbage,
//! oversize, zero length) closes that connection only, the connection limit closes extra
//! connections at accept, and the metrics count it all.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::server::{APP, HANG_GUARD, SECRET, http_get};
use roomcam::server::{self, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Srv {
    http: SocketAddr,
    tcp: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(max_conns: usize) -> Srv {
    let tcp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[media]\nudp_port = 0\ntcp_port = {tcp_port}\n\
         tcp_max_connections = {max_conns}\n[[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\n"
    );
    let config = ServerConfig::parse(&text, std::path::Path::new("test.toml")).expect("config");
    let listener = server::bind(&config).await.expect("bind");
    let http = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server::run(listener, config, async move {
            let _ = rx.await;
        })
        .await;
    });
    let tcp: SocketAddr = format!("127.0.0.1:{tcp_port}").parse().unwrap();
    let srv = Srv {
        http,
        tcp,
        _stop: stop,
    };
    // Up when /healthz answers.
    tokio::time::timeout(HANG_GUARD, async {
        while TcpStream::connect(http).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("server up");
    srv
}

async fn metric(srv: &Srv, name: &str) -> u64 {
    let (_, body) = http_get(srv.http, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{body}"))
}

/// Polls a metric until it has the value (hang guard).
async fn wait_metric(srv: &Srv, name: &str, want: u64) {
    let r = tokio::time::timeout(HANG_GUARD, async {
        loop {
            if metric(srv, name).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "{name} never became {want} (is {})",
        metric(srv, name).await
    );
}

/// True when the server closed the connection (EOF or reset) within the hang guard.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(HANG_GUARD, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A well-framed STUN-looking packet no session knows: the SFU ignores it, the stream stays.
fn stun_frame() -> Vec<u8> {
    let mut p = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    p.extend([7u8; 12]);
    roomcam::ice_tcp::encode(&p).unwrap()
}

#[tokio::test]
async fn a_bad_frame_closes_only_its_own_connection() {
    let srv = start(8).await;
    let mut good = TcpStream::connect(srv.tcp).await.unwrap();
    good.write_all(&stun_frame()).await.unwrap();
    wait_metric(&srv, "roomcam_ice_tcp_connections", 1).await;

    let bad_inputs: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // reads as an oversize length
        &[0x00, 0x00],                        // zero length
        &[0x00, 0x04, b'j', b'u', b'n', b'k'], // not STUN, DTLS or RTP
    ];
    for (i, bad) in bad_inputs.iter().enumerate() {
        let mut s = TcpStream::connect(srv.tcp).await.unwrap();
        s.write_all(bad).await.unwrap();
        assert!(closed_by_server(&mut s).await, "bad input {i} left open");
        wait_metric(&srv, "roomcam_ice_tcp_bad_frames_total", i as u64 + 1).await;
    }
    // The good connection is still there and still accepted.
    good.write_all(&stun_frame()).await.unwrap();
    wait_metric(&srv, "roomcam_ice_tcp_connections", 1).await;
    let mut buf = [0u8; 8];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), good.read(&mut buf))
            .await
            .is_err(),
        "the good connection was closed or answered garbage"
    );
    assert_eq!(metric(&srv, "roomcam_ice_tcp_accepted_total").await, 4);
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_accept() {
    let srv = start(2).await;
    let mut a = TcpStream::connect(srv.tcp).await.unwrap();
    let mut b = TcpStream::connect(srv.tcp).await.unwrap();
    wait_metric(&srv, "roomcam_ice_tcp_connections", 2).await;
    let mut c = TcpStream::connect(srv.tcp).await.unwrap();
    assert!(closed_by_server(&mut c).await);
    wait_metric(&srv, "roomcam_ice_tcp_refused_total", 1).await;
    // The first two are unaffected; when one goes, a new one fits.
    a.write_all(&stun_frame()).await.unwrap();
    b.write_all(&stun_frame()).await.unwrap();
    drop(a);
    wait_metric(&srv, "roomcam_ice_tcp_connections", 1).await;
    let _d = TcpStream::connect(srv.tcp).await.unwrap();
    wait_metric(&srv, "roomcam_ice_tcp_connections", 2).await;
    assert_eq!(metric(&srv, "roomcam_ice_tcp_refused_total").await, 1);
}
