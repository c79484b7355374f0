//! A real call through a network that drops UDP: `roomcam-server` runs in a network namespace
//! of its own (a veth pair, 10.201.N.1 on the host side, 10.201.N.2 inside) whose nftables
//! drop every UDP packet in and out, with `[media] tcp_port` set. Two `roomcam` processes on
//! the host side (GStreamer test sources, `[display] sink = "none"`) join the room; their UDP
//! ICE checks go nowhere, they fall back to ICE-TCP by themselves, and the player decodes at
//! least 100 pictures. The server's metrics show the media went over its TCP connections and
//! the firewall's counter shows UDP was tried and dropped.
//!
//! Needs root (network namespaces, nftables): CI runs as root. Not root is a failure with a
//! message, never a skip. The namespace (and with it the veth pair and the nft table) and the
//! processes are removed at the end, also when an assertion fails.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{APP, SECRET, http_get, token_for};
use serde_json::Value;

const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 50000;
const TCP_PORT: u16 = 50001;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_stdin(cmd: &str, args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_root() {
    let uid = run("id", &["-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "tests/ice_tcp_fallback.rs needs root (it creates a network namespace and nftables \
         rules); run it as root (CI does), e.g. `sudo -E cargo test --test ice_tcp_fallback`"
    );
}

/// The namespace, its veth pair and the processes; removed on drop (also after a panic).
struct Net {
    ns: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
    children: Vec<Child>,
}

impl Net {
    fn create() -> Net {
        let pid = std::process::id();
        // A subnet per process, so that two checkouts running this test at once do not clash.
        let n = 1 + pid % 250;
        let net = Net {
            ns: format!("rcice{pid}"),
            host_if: format!("rci{pid}h"),
            host_ip: format!("10.201.{n}.1"),
            ns_ip: format!("10.201.{n}.2"),
            children: Vec::new(),
        };
        let peer = format!("rci{pid}n");
        let _ = Command::new("ip")
            .args(["netns", "del", &net.ns])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &net.ns]);
        run(
            "ip",
            &[
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
        );
        run("ip", &["link", "set", &peer, "netns", &net.ns]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", net.host_ip),
                "dev",
                &net.host_if,
            ],
        );
        run("ip", &["link", "set", &net.host_if, "up"]);
        net.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.ns_ip),
            "dev",
            &peer,
        ]);
        net.exec(&["ip", "link", "set", &peer, "up"]);
        net.exec(&["ip", "link", "set", "lo", "up"]);
        // Every UDP packet into or out of the server's namespace is dropped (and counted).
        run_stdin(
            "ip",
            &["netns", "exec", &net.ns, "nft", "-f", "-"],
            "table inet rcice {\n\
               chain input { type filter hook input priority 0; meta l4proto udp counter drop; }\n\
               chain output { type filter hook output priority 0; meta l4proto udp counter drop; }\n\
             }\n",
        );
        net
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    fn udp_dropped(&self) -> u64 {
        let table = self.exec(&["nft", "list", "table", "inet", "rcice"]);
        table
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "packets")
            .filter_map(|w| w[1].parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting the namespace deletes the veth pair and the nft table in it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("roomcam-icetcp-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A log file for a process's stdout (where its tracing goes) and stderr.
fn log_file(name: &str) -> (Stdio, Stdio) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/logs");
    std::fs::create_dir_all(&p).unwrap();
    let f = std::fs::File::create(p.join(name)).unwrap();
    (f.try_clone().unwrap().into(), f.into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(net: &mut Net) {
    let cfg = dir().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{ip}:{HTTP_PORT}\"\nallow_insecure = true\n\
             [media]\nudp_port = {UDP_PORT}\ntcp_port = {TCP_PORT}\ncandidate_ips = [\"{ip}\"]\n\
             [[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\n",
            ip = net.ns_ip
        ),
    )
    .unwrap();
    let log = log_file("icetcp-server.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &net.ns])
        .arg(env!("CARGO_BIN_EXE_roomcam-server"))
        .arg("--config")
        .arg(&cfg)
        .env("ROOMCAM_LOG", "info")
        .stdout(log.0)
        .stderr(log.1)
        .spawn()
        .unwrap();
    net.children.push(child);
}

fn start_device(net: &mut Net, user: &str, status: u16) {
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
    std::fs::write(
        &cfg,
        format!(
            "[server]\nurl = \"ws://{ip}:{HTTP_PORT}/ws\"\nallow_insecure = true\n\
             [identity]\napp_id = {APP}\nuser_id = \"{user}\"\ntoken = \"{token}\"\n[room]\nid = \"room1\"\n\
             [video]\nsource = \"test\"\nwidth = 320\nheight = 240\nencoder = \"x264enc\"\n\
             [audio]\ncapture = \"test\"\nplayback = \"none\"\n\
             [display]\nsink = \"none\"\n[status]\nlisten = \"127.0.0.1:{status}\"\n",
            ip = net.ns_ip
        ),
    )
    .unwrap();
    let log = log_file(&format!("icetcp-{user}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_roomcam"))
        .arg("--config")
        .arg(&cfg)
        .env("ROOMCAM_LOG", "info")
        .stdout(log.0)
        .stderr(log.1)
        .spawn()
        .unwrap();
    net.children.push(child);
}

async fn reachable(addr: SocketAddr) -> bool {
    tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .is_ok_and(|r| r.is_ok())
}

async fn status(port: u16) -> Option<Value> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if !reachable(addr).await {
        return None;
    }
    let (code, body) = http_get(addr, "/status").await;
    (code == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_blocked_call_connects_over_ice_tcp_and_the_player_decodes_100_frames() {
    require_root();
    let mut net = Net::create();
    start_server(&mut net);
    let server: SocketAddr = format!("{}:{HTTP_PORT}", net.ns_ip).parse().unwrap();
    let up = Instant::now() + Duration::from_secs(20);
    while !reachable(server).await {
        assert!(
            Instant::now() < up,
            "the server in the namespace did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The firewall really is there: UDP to the server's media port goes nowhere.
    let probe = std::net::UdpSocket::bind(format!("{}:0", net.host_ip)).unwrap();
    probe
        .send_to(b"\x00\x01probe", format!("{}:{UDP_PORT}", net.ns_ip))
        .unwrap();

    let (sa, sb) = (free_port(), free_port());
    start_device(&mut net, "pi-a", sa);
    start_device(&mut net, "pi-b", sb);

    // Hang guard: the fallback waits 3 s, then ICE, DTLS and the first keyframe over TCP.
    let deadline = Instant::now() + Duration::from_secs(90);
    let decoded = loop {
        let s = status(sb).await;
        let decoded = s
            .as_ref()
            .and_then(|s| s["players"].as_array().cloned())
            .and_then(|p| p.into_iter().find(|p| p["stream_id"] == "pi-a-main"))
            .and_then(|p| p["video_frames_decoded"].as_u64())
            .unwrap_or(0);
        if decoded >= 100 {
            break decoded;
        }
        assert!(
            Instant::now() < deadline,
            "the player decoded {decoded} frames; status: {s:?}; logs in artifacts/logs/icetcp-*.log"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(decoded >= 100);

    let (code, body) = http_get(server, "/metrics").await;
    assert_eq!(code, 200, "{body}");
    // Both devices hold an ICE-TCP connection, and the SFU's packets went over them.
    assert_eq!(metric(&body, "roomcam_ice_tcp_connections"), 2, "{body}");
    let tcp_sent = metric(
        &body,
        "roomcam_sfu_ice_tcp_packets_total{direction=\"sent\"}",
    );
    let tcp_received = metric(
        &body,
        "roomcam_sfu_ice_tcp_packets_total{direction=\"received\"}",
    );
    assert!(tcp_sent > 200 && tcp_received > 200, "{body}");
    assert_eq!(metric(&body, "roomcam_ice_tcp_bad_frames_total"), 0);
    // The devices did try UDP first, and the firewall dropped it.
    let dropped = net.udp_dropped();
    assert!(dropped > 1, "nft dropped {dropped} UDP packets");
    drop(net);
}
