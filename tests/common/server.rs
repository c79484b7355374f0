//! A room service on 127.0.0.1:0 and a WebSocket test client speaking the protocol.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomcam::auth::{self, MintRequest, Privileges};
use roomcam::protocol::ServerMessage;
use roomcam::server::{self, ServerConfig};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const APP: u32 = 1234567890;
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
pub const APP2: u32 = 77;
pub const SECRET2: &str = "fedcba9876543210fedcba9876543210";
pub const APP_SIGN: &str = "39011cb0000000000000000000000000000000000000000000000000000000ff";

/// A hang guard for waits in tests: generous, never a speed claim.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the base config plus `extra` TOML (top-level keys first).
    pub async fn start(extra_top: &str, extra_sections: &str) -> TestServer {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n{extra_top}\n[media]\nudp_port = 0\n{extra_sections}\n\
             [[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\napp_sign = \"{APP_SIGN}\"\nallow_app_sign = true\nrevoked_users = [\"banned\"]\n\
             [[apps]]\napp_id = {APP2}\nserver_secret = \"{SECRET2}\"\n"
        );
        let config = ServerConfig::parse(&text, std::path::Path::new("test.toml")).expect("config");
        let listener = server::bind(&config).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::run(listener, config, async move {
                let _ = rx.await;
            })
            .await
            .expect("server run");
        });
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A handle to a server run elsewhere (another process): only its address is known.
    pub fn external(addr: SocketAddr) -> TestServer {
        TestServer {
            addr,
            stop: None,
            task: None,
        }
    }

    pub async fn default() -> TestServer {
        Self::start("", "").await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(HANG_GUARD, t)
                .await
                .expect("server did not stop")
                .expect("server task panicked");
        }
    }

    /// GET a path over plain HTTP/1.1 and return (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// The value of one metric line (exact name with labels), from /metrics.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http_get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing in:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // A reset after the whole response arrived (the server closing as asked) is fine.
    let read = tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut buf))
        .await
        .expect("http hang");
    if let Err(e) = read {
        assert!(!buf.is_empty(), "GET {path}: {e}");
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token for APP.
pub fn token(user: &str, room: Option<&str>, privileges: Privileges, ttl: i64) -> String {
    token_for(APP, SECRET, user, room, privileges, ttl, &[])
}

pub fn token_for(
    app_id: u32,
    secret: &str,
    user: &str,
    room: Option<&str>,
    privileges: Privileges,
    ttl: i64,
    streams: &[&str],
) -> String {
    let req = MintRequest {
        app_id,
        user_id: user.into(),
        room_id: room.map(str::to_string),
        privileges,
        stream_ids: streams.iter().map(|s| s.to_string()).collect(),
        now_unix: now_unix(),
        ttl_secs: ttl,
    };
    auth::token04::mint(&req, secret, &mut rand::thread_rng()).unwrap()
}

pub fn all() -> Privileges {
    Privileges::default()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The app-sign nonce from `hello`.
    pub nonce: String,
}

impl Client {
    /// Connects and reads `hello`.
    pub async fn connect(server: &TestServer) -> Client {
        let (ws, _) = tokio::time::timeout(
            HANG_GUARD,
            tokio_tungstenite::connect_async(server.ws_url()),
        )
        .await
        .expect("connect hang")
        .expect("connect");
        let mut c = Client {
            ws,
            nonce: String::new(),
        };
        match c.recv().await {
            ServerMessage::Hello { nonce, version, .. } => {
                assert_eq!(version, roomcam::protocol::PROTOCOL_VERSION);
                c.nonce = nonce;
            }
            other => panic!("expected hello, got {other:?}"),
        }
        c
    }

    /// Connects and logs in with a fresh token; returns the client and its loginResult.
    pub async fn login(
        server: &TestServer,
        room: &str,
        user: &str,
        updates: bool,
    ) -> (Client, ServerMessage) {
        let mut c = Client::connect(server).await;
        let t = token(user, Some(room), all(), 3600);
        c.send_json(
            json!({"type":"login","version":1,"appId":APP,"roomId":room,"userId":user,
                           "userName":format!("name of {user}"),"token":t,"userUpdates":updates}),
        )
        .await;
        let r = c.recv().await;
        assert!(
            matches!(r, ServerMessage::LoginResult { .. }),
            "login failed: {r:?}"
        );
        (c, r)
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: String) {
        self.ws.send(Message::Text(t.into())).await.expect("send");
    }

    /// The next protocol message (skipping pings); panics on close or after the hang guard.
    pub async fn recv(&mut self) -> ServerMessage {
        match self.try_recv(HANG_GUARD).await {
            Some(m) => m,
            None => panic!("no message within the hang guard"),
        }
    }

    /// The next message within `wait`, or None (also None when the socket closed).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerMessage> {
        loop {
            let next = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match next {
                Ok(Message::Text(t)) => {
                    return Some(
                        serde_json::from_str(&t)
                            .unwrap_or_else(|e| panic!("bad server message {t}: {e}")),
                    );
                }
                Ok(Message::Close(_)) => return None,
                Err(e) => {
                    eprintln!("websocket error: {e}");
                    return None;
                }
                Ok(_) => continue,
            }
        }
    }

    /// Reads until a message matching `pred` arrives (others are skipped).
    pub async fn recv_until(&mut self, pred: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(m) if pred(&m) => return m,
                Some(_) => continue,
                None => panic!("wanted message never came"),
            }
        }
    }

    /// Asserts nothing arrives for `wait` (used only to show the absence of a message).
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(m) = self.try_recv(wait).await {
            panic!("unexpected message {m:?}");
        }
    }

    /// Waits until the server closes the connection.
    pub async fn expect_closed(&mut self) {
        let end = tokio::time::timeout(HANG_GUARD, async {
            loop {
                match self.ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await;
        assert!(end.is_ok(), "server did not close the connection");
    }

    /// Sends a request and returns the first reply (error or result).
    pub async fn request(&mut self, v: Value) -> ServerMessage {
        self.send_json(v).await;
        self.recv().await
    }
}

/// The error code of an `error` message, or panics.
pub fn error_code(m: &ServerMessage) -> u32 {
    match m {
        ServerMessage::Error { code, .. } => code.code(),
        other => panic!("expected an error, got {other:?}"),
    }
}
