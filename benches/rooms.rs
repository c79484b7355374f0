//! Room-service benchmark (issue 2): logins per second, and room-event fan-out latency.
//!
//! The room service runs in this process on its own multi-threaded tokio runtime (threads named
//! `srv-*`), started exactly as the tests start it (`roomcam::server::run` on 127.0.0.1:0). The
//! load generator runs on a second runtime (threads named `gen-*`) and talks to it over real
//! loopback TCP + WebSocket with tokio-tungstenite. Both share the machine's cores, so the
//! numbers include the load generator's own cost; the report prints how much CPU each side used.
//!
//! ```text
//! cargo bench --bench rooms                       # full run (~1 minute on 2 cores)
//! ROOMCAM_BENCH_QUICK=1 cargo bench --bench rooms # a few seconds
//! cargo bench --bench rooms -- --help             # every option
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use roomcam::auth::{self, MintRequest, Privileges};
use roomcam::room::{Now, RoomOutput, RoomService};
use roomcam::server::{self, ServerConfig};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const APP: u32 = 1234567890;
const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// A guard against hangs; never a speed claim.
const GUARD: Duration = Duration::from_secs(20);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    logins: usize,
    concurrency: usize,
    sizes: Vec<usize>,
    events: usize,
    gap: Duration,
    server_threads: usize,
    client_threads: usize,
    shared_runtime: bool,
    user_updates: bool,
    only: Option<String>,
}

const HELP: &str = "\
roomcam room-service benchmark

USAGE: cargo bench --bench rooms -- [OPTIONS]

  --quick                 a few seconds (also ROOMCAM_BENCH_QUICK=1)
  --logins N              logins in the login benchmark (default 20000, quick 2000)
  --concurrency C         concurrent login clients (default 50)
  --sizes A,B,..          room sizes for fan-out (default 10,100,500)
  --events E              fan-out events per room size (default 200, quick 30)
  --gap-ms G              idle time between fan-out events (default 5)
  --server-threads T      tokio worker threads of the server runtime (default 2)
  --client-threads T      tokio worker threads of the load generator (default 2)
  --shared-runtime        server and load generator on one runtime (server-threads workers)
  --no-user-updates       fan-out receivers log in without userUpdates
  --only PART             run one part: login, fanout, or core (the room logic alone)
";

impl Opts {
    fn parse() -> Opts {
        let env_quick =
            std::env::var("ROOMCAM_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = env_quick || args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            quick,
            logins: if quick { 2000 } else { 20_000 },
            concurrency: 50,
            sizes: vec![10, 100, 500],
            events: if quick { 30 } else { 200 },
            gap: Duration::from_millis(5),
            server_threads: 2,
            client_threads: 2,
            shared_runtime: false,
            user_updates: true,
            only: None,
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> String {
                it.next()
                    .unwrap_or_else(|| fail(&format!("{name} needs a value")))
            };
            match a.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" | "--quick" => {}
                "--help" | "-h" => {
                    print!("{HELP}");
                    std::process::exit(0);
                }
                "--logins" => o.logins = num(&value("--logins")),
                "--concurrency" => o.concurrency = num(&value("--concurrency")).max(1),
                "--sizes" => {
                    o.sizes = value("--sizes").split(',').map(num).collect();
                }
                "--events" => o.events = num(&value("--events")).max(1),
                "--gap-ms" => o.gap = Duration::from_millis(num(&value("--gap-ms")) as u64),
                "--server-threads" => o.server_threads = num(&value("--server-threads")).max(1),
                "--client-threads" => o.client_threads = num(&value("--client-threads")).max(1),
                "--shared-runtime" => o.shared_runtime = true,
                "--no-user-updates" => o.user_updates = false,
                "--only" => o.only = Some(value("--only")),
                other => fail(&format!("unknown argument {other:?} (try --help)")),
            }
        }
        o
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == part)
    }
}

fn num(s: &str) -> usize {
    s.trim()
        .parse()
        .unwrap_or_else(|_| fail(&format!("not a number: {s:?}")))
}

fn fail(msg: &str) -> ! {
    eprintln!("rooms bench: {msg}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// The server under test

struct BenchServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn config_text() -> String {
    // Limits raised for the benchmark only: 500+ users in one room, and a publisher sending a few
    // hundred requests per second. Heartbeats are not sent by the load generator, so the session
    // timeout is long enough never to fire during a run.
    format!(
        "listen = \"127.0.0.1:0\"\n\
         [session]\nheartbeat_interval_secs = 10\ntimeout_secs = 600\n\
         [media]\nudp_port = 0\n\
         [limits]\nusers_per_room = 1000\nrooms_per_app = 10000\nmessages_per_second = 100000\nmax_connections = 10000\n\
         [[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\n"
    )
}

fn start_server(rt: &Runtime) -> BenchServer {
    let config =
        ServerConfig::parse(&config_text(), std::path::Path::new("bench.toml")).expect("config");
    let listener = rt.block_on(server::bind(&config)).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = rt.spawn(async move {
        server::run(listener, config, async move {
            let _ = rx.await;
        })
        .await
        .expect("server run");
    });
    BenchServer {
        addr,
        stop: Some(stop),
        task,
    }
}

impl BenchServer {
    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn stop(mut self, rt: &Runtime) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task;
        let stopped = rt.block_on(async move { tokio::time::timeout(GUARD, task).await });
        if stopped.is_err() {
            eprintln!("warning: server did not stop within {GUARD:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client helpers

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn token(user: &str, room: &str) -> String {
    let req = MintRequest {
        app_id: APP,
        user_id: user.into(),
        room_id: Some(room.into()),
        privileges: Privileges::default(),
        stream_ids: Vec::new(),
        now_unix: now_unix(),
        ttl_secs: 3600,
    };
    auth::token04::mint(&req, SECRET, &mut rand::thread_rng()).expect("mint")
}

fn login_json(room: &str, user: &str, token: &str, updates: bool) -> String {
    json!({"type":"login","version":1,"appId":APP,"roomId":room,"userId":user,
           "userName":format!("bench {user}"),"token":token,"userUpdates":updates})
    .to_string()
}

/// The next text frame (pings skipped), or an error naming what happened.
async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(GUARD, ws.next()).await {
            Err(_) => return Err("timed out".into()),
            Ok(None) => return Err("connection closed".into()),
            Ok(Some(Err(e))) => return Err(format!("websocket error: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) => return Err("server closed".into()),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The `type` of a server message, read without parsing the whole message.
fn msg_type(text: &str) -> &str {
    field(text, "type").unwrap_or("")
}

/// The first string value of `"name":"…"` in a compact JSON text (no escapes in our ids).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

async fn connect(url: &str) -> Result<Ws, String> {
    let (ws, _) = tokio::time::timeout(GUARD, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

/// Connects, reads `hello`, logs in and reads `loginResult`.
async fn connect_and_login(url: &str, login: String) -> Result<Ws, String> {
    let mut ws = connect(url).await?;
    let hello = next_text(&mut ws).await?;
    if msg_type(&hello) != "hello" {
        return Err(format!("expected hello, got {hello}"));
    }
    ws.send(Message::Text(login.into()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let r = next_text(&mut ws).await?;
    if msg_type(&r) != "loginResult" {
        return Err(format!("login failed: {r}"));
    }
    Ok(ws)
}

/// Sends a close frame and waits until the server closes too (it does so after the hub has
/// released the session).
async fn close(mut ws: Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(GUARD, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Summary {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summarize(mut v: Vec<Duration>) -> Summary {
    v.sort_unstable();
    Summary {
        n: v.len(),
        p50: pct(&v, 50.0),
        p99: pct(&v, 99.0),
        max: v.last().copied().unwrap_or_default(),
    }
}

/// CPU seconds used by this process's threads whose names start with `srv` and `gen`, by the
/// whole process, and by the whole machine (all cores, busy time).
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    generator: f64,
    process: f64,
    machine: f64,
}

/// utime + stime (in ticks) of a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<f64> {
    // Fields after the ")" of the comm: state is field 3; utime, stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
}

fn cpu() -> Cpu {
    let mut c = Cpu::default();
    // clock ticks per second: 100 on every Linux we run on.
    let tick = 100.0;
    c.process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s))
        .unwrap_or(0.0)
        / tick;
    // First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let busy: f64 = v
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, x)| x)
            .sum();
        c.machine = busy / tick;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return c;
    };
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let Some(ticks) = std::fs::read_to_string(p.join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
        else {
            continue;
        };
        let secs = ticks / tick;
        if comm.starts_with("srv") {
            c.server += secs;
        } else if comm.starts_with("gen") {
            c.generator += secs;
        }
    }
    c
}

fn cpu_line(before: Cpu, after: Cpu, wall: Duration, shared: bool) -> String {
    let w = wall.as_secs_f64().max(1e-9);
    let pc = |a: f64, b: f64| 100.0 * (a - b) / w;
    let others = pc(
        after.machine - after.process,
        before.machine - before.process,
    )
    .max(0.0);
    let mine = if shared {
        format!(
            "server + load generator (shared runtime) {:.0}%",
            pc(
                after.server + after.generator,
                before.server + before.generator
            )
        )
    } else {
        format!(
            "server runtime {:.0}%, load generator {:.0}%",
            pc(after.server, before.server),
            pc(after.generator, before.generator)
        )
    };
    format!(
        "CPU (100% = one core, {} cores): {mine}; other processes on the machine {others:.0}%{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if others > 20.0 {
            " (BUSY MACHINE: numbers disturbed)"
        } else {
            ""
        }
    )
}

// ---------------------------------------------------------------------------------------------
// Logins per second

struct LoginSample {
    /// TCP connect + WebSocket upgrade + `hello`.
    connect: Duration,
    /// `login` sent → `loginResult` read.
    login: Duration,
    /// Close sent → server's close read (the hub has released the session).
    close: Duration,
}

async fn login_worker(
    url: String,
    jobs: Arc<Vec<(String, String, String)>>,
    next: Arc<AtomicUsize>,
) -> (Vec<LoginSample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((room, user, token)) = jobs.get(i) else {
            break;
        };
        let t0 = Instant::now();
        let mut ws = match connect(&url).await {
            Ok(ws) => ws,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match next_text(&mut ws).await {
            Ok(t) if msg_type(&t) == "hello" => {}
            Ok(t) => {
                errors.push(format!("expected hello, got {t}"));
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        let t1 = Instant::now();
        if let Err(e) = ws
            .send(Message::Text(login_json(room, user, token, false).into()))
            .await
        {
            errors.push(format!("send: {e}"));
            continue;
        }
        match next_text(&mut ws).await {
            Ok(t) if msg_type(&t) == "loginResult" => {}
            Ok(t) => {
                errors.push(format!("login failed: {t}"));
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        let t2 = Instant::now();
        close(ws).await;
        let t3 = Instant::now();
        samples.push(LoginSample {
            connect: t1 - t0,
            login: t2 - t1,
            close: t3 - t2,
        });
    }
    (samples, errors)
}

fn bench_logins(opts: &Opts, srv_rt: &Runtime, gen_rt: &Runtime) -> String {
    let server = start_server(srv_rt);
    // Tokens are minted before the clock starts: minting is the token issuer's work, not the
    // room service's. One room per client task, so every login opens a room and every close
    // removes it again.
    let jobs: Vec<(String, String, String)> = (0..opts.logins)
        .map(|i| {
            let room = format!("r{}", i % opts.concurrency);
            let user = format!("u{i}");
            let t = token(&user, &room);
            (room, user, t)
        })
        .collect();
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let url = server.url();

    // A short warm-up (not counted): 200 logins.
    let warm: Arc<Vec<_>> = Arc::new(
        (0..200.min(opts.logins))
            .map(|i| {
                let room = format!("warm{}", i % 10);
                let user = format!("warm{i}");
                let t = token(&user, &room);
                (room, user, t)
            })
            .collect(),
    );
    gen_rt.block_on(async {
        let n = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| tokio::spawn(login_worker(url.clone(), warm.clone(), n.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });

    let c0 = cpu();
    let start = Instant::now();
    let results = gen_rt.block_on(async {
        let tasks: Vec<_> = (0..opts.concurrency)
            .map(|_| tokio::spawn(login_worker(url.clone(), jobs.clone(), next.clone())))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("login worker panicked"));
        }
        all
    });
    let wall = start.elapsed();
    let c1 = cpu();
    server.stop(srv_rt);

    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for (s, e) in results {
        samples.extend(s);
        errors.extend(e);
    }
    let ok = samples.len();
    let rate = ok as f64 / wall.as_secs_f64();
    let connect = summarize(samples.iter().map(|s| s.connect).collect());
    let login = summarize(samples.iter().map(|s| s.login).collect());
    let full = summarize(
        samples
            .iter()
            .map(|s| s.connect + s.login + s.close)
            .collect(),
    );
    let closing = summarize(samples.iter().map(|s| s.close).collect());

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Logins per second\n\n{} logins by {} concurrent clients; each: TCP connect, WebSocket \
         upgrade, `hello`, `login` (token04), `loginResult`, close (waits for the server's close).\n",
        opts.logins, opts.concurrency
    );
    let _ = writeln!(
        out,
        "| logins ok | errors | wall (s) | logins/s | target | met |\n|---:|---:|---:|---:|---:|:--:|"
    );
    let _ = writeln!(
        out,
        "| {ok} | {} | {:.2} | {:.0} | 2000 | {} |\n",
        errors.len(),
        wall.as_secs_f64(),
        rate,
        if rate >= 2000.0 && errors.is_empty() {
            "yes"
        } else {
            "no"
        }
    );
    let _ = writeln!(
        out,
        "| phase (ms) | p50 | p99 | max |\n|---|---:|---:|---:|"
    );
    for (name, s) in [
        ("connect + upgrade + hello", &connect),
        ("login → loginResult", &login),
        ("close → server close", &closing),
        ("whole cycle", &full),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    }
    let per = |a: f64, b: f64| (a - b) * 1e6 / ok.max(1) as f64;
    let split = if opts.shared_runtime {
        format!(
            "server + load generator {:.0} µs",
            per(c1.server + c1.generator, c0.server + c0.generator)
        )
    } else {
        format!(
            "server {:.0} µs, load generator {:.0} µs",
            per(c1.server, c0.server),
            per(c1.generator, c0.generator)
        )
    };
    let _ = writeln!(
        out,
        "\n{}\nCPU per login: {split}\n",
        cpu_line(c0, c1, wall, opts.shared_runtime),
    );
    if !errors.is_empty() {
        let _ = writeln!(out, "first errors:");
        for e in errors.iter().take(5) {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Fan-out latency

/// One `streamUpdate` seen by one receiver: (event number, ADD?, arrival).
type Arrival = (usize, bool, Instant);

/// A room member that reports every `streamUpdate` it reads.
async fn receiver(
    mut ws: Ws,
    arrivals: mpsc::UnboundedSender<Arrival>,
    problems: mpsc::UnboundedSender<String>,
) {
    loop {
        let frame = ws.next().await;
        let at = Instant::now();
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let _ = problems.send(format!("receiver websocket error: {e}"));
                return;
            }
        };
        match msg_type(&text) {
            "streamUpdate" => {
                let add = field(&text, "updateType") == Some("ADD");
                let Some(k) = field(&text, "streamId")
                    .and_then(|s| s.strip_prefix('e'))
                    .and_then(|s| s.parse().ok())
                else {
                    let _ = problems.send(format!("unexpected stream update {text}"));
                    continue;
                };
                if arrivals.send((k, add, at)).is_err() {
                    return;
                }
            }
            "userUpdate" => {}
            _ => {
                let _ = problems.send(format!("receiver got {text}"));
            }
        }
    }
}

struct FanoutResult {
    n: usize,
    logins_wall: Duration,
    per_receiver_add: Summary,
    all_add: Summary,
    per_receiver_del: Summary,
    all_del: Summary,
    publish_rtt: Summary,
    cpu: String,
    problems: Vec<String>,
}

/// Waits for `n` arrivals of event `k` (kind `add`); returns the latencies from `t0`.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    n: usize,
    k: usize,
    add: bool,
    t0: Instant,
    problems: &mut Vec<String>,
) -> Vec<Duration> {
    let mut got = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + GUARD;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((ek, eadd, at))) if ek == k && eadd == add => got.push(at - t0),
            Ok(Some((ek, eadd, _))) => problems.push(format!(
                "stray update for event {ek} ({}) while waiting for {k}",
                if eadd { "ADD" } else { "DELETE" }
            )),
            Ok(None) | Err(_) => {
                problems.push(format!(
                    "event {k}: only {} of {n} receivers got it within {GUARD:?}",
                    got.len()
                ));
                break;
            }
        }
    }
    got
}

fn bench_fanout_one(opts: &Opts, n: usize, srv_rt: &Runtime, gen_rt: &Runtime) -> FanoutResult {
    let server = start_server(srv_rt);
    let url = server.url();
    let room = format!("fan{n}");
    let logins: Vec<String> = (0..n)
        .map(|i| {
            let user = format!("m{i}");
            login_json(&room, &user, &token(&user, &room), opts.user_updates)
        })
        .collect();
    let pub_login = login_json(&room, "publisher", &token("publisher", &room), false);
    let events = opts.events;
    let gap = opts.gap;
    let concurrency = opts.concurrency;

    let (arr_tx, mut arr_rx) = mpsc::unbounded_channel::<Arrival>();
    let (prob_tx, mut prob_rx) = mpsc::unbounded_channel::<String>();
    let mut problems = Vec::new();

    // Members log in, `concurrency` at a time.
    let t_login = Instant::now();
    let members: Vec<Ws> = gen_rt.block_on(async {
        let logins = Arc::new(logins);
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..concurrency.min(n))
            .map(|_| {
                let logins = logins.clone();
                let next = next.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(l) = logins.get(i) else { break };
                        mine.push(connect_and_login(&url, l.clone()).await);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            for r in t.await.expect("login task panicked") {
                match r {
                    Ok(ws) => all.push(ws),
                    Err(e) => fail(&format!("member login failed (room of {n}): {e}")),
                }
            }
        }
        all
    });
    let logins_wall = t_login.elapsed();
    let receivers: Vec<_> = members
        .into_iter()
        .map(|ws| gen_rt.spawn(receiver(ws, arr_tx.clone(), prob_tx.clone())))
        .collect();
    drop(arr_tx);

    let c0 = cpu();
    let start = Instant::now();
    let (add, all_add, del, all_del, rtt, publisher) = gen_rt.block_on(async {
        let mut publisher = connect_and_login(&url, pub_login)
            .await
            .unwrap_or_else(|e| fail(&format!("publisher login: {e}")));
        // Let the members read the burst of userUpdates the logins caused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut add = Vec::with_capacity(events * n);
        let mut del = Vec::with_capacity(events * n);
        let mut all_add = Vec::with_capacity(events);
        let mut all_del = Vec::with_capacity(events);
        let mut rtt = Vec::with_capacity(events);
        for k in 0..events {
            for (is_add, kind) in [(true, "publish"), (false, "stopPublish")] {
                let req = json!({"type": kind, "streamId": format!("e{k}")}).to_string();
                let t0 = Instant::now();
                publisher
                    .send(Message::Text(req.into()))
                    .await
                    .unwrap_or_else(|e| fail(&format!("publisher send: {e}")));
                let reply = next_text(&mut publisher)
                    .await
                    .unwrap_or_else(|e| fail(&format!("publisher: {e}")));
                let t_reply = t0.elapsed();
                let want = if is_add {
                    "publishResult"
                } else {
                    "stopPublishResult"
                };
                if msg_type(&reply) != want {
                    fail(&format!("{kind} got {reply}"));
                }
                let lat = collect(&mut arr_rx, n, k, is_add, t0, &mut problems).await;
                let last = lat.iter().copied().max().unwrap_or_default();
                if is_add {
                    rtt.push(t_reply);
                    add.extend(lat);
                    all_add.push(last);
                } else {
                    del.extend(lat);
                    all_del.push(last);
                }
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
            }
        }
        (add, all_add, del, all_del, rtt, publisher)
    });
    let wall = start.elapsed();
    let c1 = cpu();
    gen_rt.block_on(close(publisher));
    for r in &receivers {
        r.abort();
    }
    server.stop(srv_rt);
    while let Ok(p) = prob_rx.try_recv() {
        problems.push(p);
    }
    FanoutResult {
        n,
        logins_wall,
        per_receiver_add: summarize(add),
        all_add: summarize(all_add),
        per_receiver_del: summarize(del),
        all_del: summarize(all_del),
        publish_rtt: summarize(rtt),
        cpu: {
            let msgs = (2 * events * (n + 1)) as f64;
            let per = |a: f64, b: f64| (a - b) * 1e6 / msgs;
            let split = if opts.shared_runtime {
                format!(
                    "server + load generator {:.1} µs",
                    per(c1.server + c1.generator, c0.server + c0.generator)
                )
            } else {
                format!(
                    "server {:.1} µs, load generator {:.1} µs",
                    per(c1.server, c0.server),
                    per(c1.generator, c0.generator)
                )
            };
            format!(
                "{}; CPU per delivered message: {split}",
                cpu_line(c0, c1, wall, opts.shared_runtime)
            )
        },
        problems,
    }
}

fn bench_fanout(opts: &Opts, srv_rt: &Runtime, gen_rt: &Runtime) -> String {
    let results: Vec<FanoutResult> = opts
        .sizes
        .iter()
        .map(|&n| bench_fanout_one(opts, n, srv_rt, gen_rt))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Room-event fan-out\n\nN members in one room (userUpdates: {}); one more member \
         publishes stream e<k> and then stops it, {} times, {} ms apart. Latency: the publisher's \
         send of `publish`/`stopPublish` → a member has read the resulting `streamUpdate` \
         (same-process monotonic clock). \"all N\" is per event, the time until the last member \
         had it.\n",
        opts.user_updates,
        opts.events,
        opts.gap.as_millis()
    );
    let _ = writeln!(
        out,
        "| N | update | samples | each member p50 | p99 | max | all N p50 | all N p99 | all N max | publishResult p50 |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &results {
        for (kind, each, all) in [
            ("ADD", &r.per_receiver_add, &r.all_add),
            ("DELETE", &r.per_receiver_del, &r.all_del),
        ] {
            let _ = writeln!(
                out,
                "| {} | {kind} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.n,
                each.n,
                ms(each.p50),
                ms(each.p99),
                ms(each.max),
                ms(all.p50),
                ms(all.p99),
                ms(all.max),
                if kind == "ADD" {
                    ms(r.publish_rtt.p50)
                } else {
                    "".into()
                }
            );
        }
    }
    let _ = writeln!(out, "\n(all times in ms)\n");
    for r in &results {
        let _ = writeln!(
            out,
            "N={}: {} members logged in in {:.0} ms; {}",
            r.n,
            r.n,
            r.logins_wall.as_secs_f64() * 1000.0,
            r.cpu
        );
    }
    if let Some(r500) = results.iter().find(|r| r.n == 500) {
        let p99 = r500.all_add.p99.max(r500.all_del.p99);
        let _ = writeln!(
            out,
            "\ntarget: an event reaches all 500 members within 20 ms at p99: {} (p99 {} ms)",
            if p99 <= Duration::from_millis(20) {
                "met"
            } else {
                "NOT met"
            },
            ms(p99)
        );
    }
    for r in &results {
        if !r.problems.is_empty() {
            let _ = writeln!(
                out,
                "\nN={}: {} problems, first: {:?}",
                r.n,
                r.problems.len(),
                &r.problems[..r.problems.len().min(3)]
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The room logic alone: what the server's single hub task does, without sockets

/// Drains the room logic's output; returns how many messages it asked to send.
fn drain(room: &mut RoomService, serialize: bool) -> usize {
    let mut n = 0;
    while let Some(out) = room.poll_output() {
        if let RoomOutput::Send { message, .. } = out {
            n += 1;
            if serialize {
                // What each connection's writer task does with its copy.
                std::hint::black_box(serde_json::to_string(&*message).expect("serialize"));
            }
        }
    }
    n
}

fn bench_core(opts: &Opts) -> String {
    let config = ServerConfig::parse(&config_text(), std::path::Path::new("bench.toml"))
        .expect("config")
        .room_config();
    let now = || Now {
        mono: Instant::now(),
        unix: now_unix(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## The room logic alone (one thread, no sockets)\n\n\
         `RoomService` driven directly: the work the server's single hub task does per login \
         (token04 decode, room bookkeeping) and per event (one `Arc` per receiver queued), and, \
         separately, the JSON serialization that each connection's writer task then does for its \
         own copy.\n"
    );
    let _ = writeln!(
        out,
        "| operation | count | per op (µs) | ops/s |\n|---|---:|---:|---:|"
    );
    let mut row = |name: &str, count: usize, t: Duration| {
        let per = t.as_secs_f64() * 1e6 / count.max(1) as f64;
        let _ = writeln!(
            out,
            "| {name} | {count} | {per:.2} | {:.0} |",
            count as f64 / t.as_secs_f64().max(1e-12)
        );
    };

    // Logins: connect, login, disconnect.
    let n = opts.logins;
    let jobs: Vec<String> = (0..n)
        .map(|i| {
            let room = format!("r{}", i % opts.concurrency);
            let user = format!("u{i}");
            login_json(&room, &user, &token(&user, &room), false)
        })
        .collect();
    for serialize in [false, true] {
        let mut room = RoomService::new(config.clone(), 1);
        let t = Instant::now();
        for j in &jobs {
            let id = room.connect(now());
            room.handle_text(now(), id, j);
            drain(&mut room, serialize);
            room.disconnect(now(), id);
            drain(&mut room, serialize);
        }
        let name = if serialize {
            "login cycle + serializing hello, loginResult"
        } else {
            "login cycle (connect, login, disconnect)"
        };
        row(name, n, t.elapsed());
    }

    // Fan-out: one publish + stopPublish into a room of N.
    for &size in &opts.sizes {
        for serialize in [false, true] {
            let mut room = RoomService::new(config.clone(), 2);
            let room_id = "core";
            for i in 0..size {
                let user = format!("m{i}");
                let id = room.connect(now());
                room.handle_text(
                    now(),
                    id,
                    &login_json(room_id, &user, &token(&user, room_id), opts.user_updates),
                );
                drain(&mut room, false);
            }
            let publisher = room.connect(now());
            room.handle_text(
                now(),
                publisher,
                &login_json(room_id, "publisher", &token("publisher", room_id), false),
            );
            drain(&mut room, false);
            let reqs: Vec<(String, String)> = (0..opts.events)
                .map(|k| {
                    (
                        json!({"type":"publish","streamId":format!("e{k}")}).to_string(),
                        json!({"type":"stopPublish","streamId":format!("e{k}")}).to_string(),
                    )
                })
                .collect();
            let mut sent = 0;
            let t = Instant::now();
            for (p, s) in &reqs {
                room.handle_text(now(), publisher, p);
                sent += drain(&mut room, serialize);
                room.handle_text(now(), publisher, s);
                sent += drain(&mut room, serialize);
            }
            let el = t.elapsed();
            assert_eq!(sent, 2 * opts.events * (size + 1), "fan-out message count");
            let name = if serialize {
                format!("event to {size} members + serializing each copy")
            } else {
                format!("event to {size} members (hub work)")
            };
            row(&name, 2 * opts.events, el);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

fn runtime(name: &'static str, threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    let opts = Opts::parse();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("# roomcam room-service benchmark\n");
    println!(
        "{} cores, Linux {}; server runtime {} worker threads, load generator {} ({}); release build; \
         server and load generator in one process, over loopback TCP.{}\n",
        cores,
        kernel.trim(),
        opts.server_threads,
        if opts.shared_runtime {
            "the same runtime".to_string()
        } else {
            format!("{} worker threads", opts.client_threads)
        },
        if opts.shared_runtime {
            "shared"
        } else {
            "separate runtimes"
        },
        if opts.quick { " QUICK run." } else { "" }
    );
    let srv_rt = runtime("srv", opts.server_threads);
    let gen_own = (!opts.shared_runtime).then(|| runtime("gen", opts.client_threads));
    let gen_rt = gen_own.as_ref().unwrap_or(&srv_rt);

    if opts.runs("login") {
        println!("{}", bench_logins(&opts, &srv_rt, gen_rt));
    }
    if opts.runs("fanout") {
        println!("{}", bench_fanout(&opts, &srv_rt, gen_rt));
    }
    if opts.runs("core") {
        println!("{}", bench_core(&opts));
    }
}
