//! `roomcam`: the appliance. Thin: parse arguments, load the config, build, run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use roomcam::appliance::config::{Auth, DeviceConfig, VideoSource};
use roomcam::appliance::{device, gst_backend};
use roomcam::server::{self, ServerConfig};

#[derive(Parser)]
#[command(name = "roomcam", version, about = "The roomcam video-call appliance")]
struct Cli {
    /// The device config file (TOML); default /etc/roomcam/roomcam.toml, else /boot/firmware/roomcam.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run an embedded room service and this device on it (test sources when there is no
    /// camera), and print the browser URL.
    Demo {
        /// Where the embedded room service listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the device's status endpoint listens.
        #[arg(long, default_value = "127.0.0.1:9100")]
        status: SocketAddr,
        /// Run the room service alone, without this device.
        #[arg(long)]
        no_device: bool,
        /// Beyond loopback the demo serves HTTPS with a self-signed certificate kept here
        /// (default: $XDG_STATE_HOME/roomcam/demo-tls, else ~/.local/state/roomcam/demo-tls).
        #[arg(long, value_name = "DIR")]
        tls_dir: Option<PathBuf>,
    },
    /// Validate the config and what it points to; exit non-zero with the reasons.
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List cameras (formats), microphones, speakers, H.264 encoders/decoders and displays, and
    /// what `auto` would pick (with the config's size and rate when --config is given).
    Devices {
        /// JSON: the listing and the choice, every entry with why `auto` would not pick it.
        #[arg(long)]
        json: bool,
        /// Read the listing from this file (a recorded one) instead of the machine.
        #[arg(long, value_name = "FILE")]
        listing: Option<PathBuf>,
        /// Judge with this device config's size, rate and explicit choices.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

const DEMO_APP_ID: u32 = 1234567890;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMCAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

/// Errors are printed as one clear message (with their causes), never as a backtrace.
fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of `main`: no other thread exists yet.
    unsafe { roomcam::media::prepare_process_env() };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcam: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo {
            listen,
            status,
            no_device,
            tls_dir,
        }) => {
            init_tracing();
            demo(listen, status, no_device, tls_dir)
        }
        Some(Command::Check { config }) => check(config.or(cli.config).as_deref()),
        Some(Command::Devices {
            json,
            listing,
            config,
        }) => devices(config.or(cli.config).as_deref(), json, listing.as_deref()),
        None => {
            init_tracing();
            let (cfg, path) = DeviceConfig::load(cli.config.as_deref())?;
            tracing::info!(config = %path.display(), "starting");
            let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
            rt.block_on(run_device(cfg, path))
        }
    }
}

async fn run_device(mut cfg: DeviceConfig, path: PathBuf) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        let backend = gst_backend::GstBackend::from_config(&cfg)?;
        let stats = backend.stats_reader();
        let screen = backend.screen();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (reload_tx, reload_rx) = tokio::sync::oneshot::channel::<()>();
        let run = device::run_with_screen(
            cfg.clone(),
            Box::new(backend),
            stats,
            screen,
            async move {
                let _ = stop_rx.await;
            },
            async move {
                let _ = reload_rx.await;
            },
            |addr| println!("status: http://{addr}/status"),
        );
        tokio::pin!(run);
        let mut stop_tx = Some(stop_tx);
        let mut reload_tx = Some(reload_tx);
        let exit = loop {
            tokio::select! {
                r = &mut run => break r?,
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {
                    if let Some(tx) = reload_tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
            }
            // The first stop signal logs out cleanly; a second one exits at once.
            match stop_tx.take() {
                Some(tx) => {
                    tracing::info!("stopping (send the signal again to exit at once)");
                    let _ = tx.send(());
                }
                None => std::process::exit(1),
            }
        };
        match exit {
            device::Exit::Shutdown => return Ok(()),
            device::Exit::Reload => match DeviceConfig::load(Some(&path)) {
                Ok((c, _)) => {
                    tracing::info!(config = %path.display(), "config reloaded; restarting the call");
                    cfg = c;
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload failed; restarting with the old config")
                }
            },
        }
    }
}

fn devices(config: Option<&Path>, json: bool, listing: Option<&Path>) -> Result<()> {
    use roomcam::devices;
    let listing = match listing {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a device listing", p.display()))?
        }
        None => devices::discover(),
    };
    let mut want = devices::Wanted::default();
    if let Some(path) = config {
        let (cfg, _) = DeviceConfig::load(Some(path))?;
        let (publish, _) = gst_backend::settings_from(&cfg)?;
        want = publish.video.wanted();
    }
    let choice = devices::choose(&listing, &want);
    if json {
        let report = devices::Report {
            listing: &listing,
            choice: &choice,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", devices::render_table(&listing, &choice));
    }
    Ok(())
}

fn check(path: Option<&Path>) -> Result<()> {
    let (cfg, path) = DeviceConfig::load(path)?;
    let mut problems = Vec::new();
    match cfg.auth() {
        Auth::Token(t) => check_token(&t, &mut problems),
        Auth::TokenFile(p) => match std::fs::read_to_string(&p) {
            Ok(t) => check_token(t.trim(), &mut problems),
            Err(e) => problems.push(format!("[identity] token_file {}: {e}", p.display())),
        },
        Auth::AppSign(_) => {}
    }
    if cfg.server.url.starts_with("wss://")
        && let Err(e) = roomcam::engine::wss::Trust::new(cfg.server.ca_file.as_deref())
    {
        problems.push(e.to_string());
    }
    // Explicit cameras are checked against the machine the way the publisher will use them.
    if let Ok(source @ (VideoSource::V4l2(_) | VideoSource::Libcamera)) = cfg.video.source() {
        let listing = roomcam::devices::discover();
        let want = roomcam::devices::Wanted {
            width: cfg.video.width,
            height: cfg.video.height,
            fps: cfg.video.fps,
            ..roomcam::devices::Wanted::default()
        };
        let planned = match source {
            VideoSource::V4l2(dev) => {
                roomcam::devices::plan_v4l2(&listing, &dev.to_string_lossy(), &want)
            }
            _ => roomcam::devices::plan_libcamera(&listing, &want),
        };
        if let Err(e) = planned {
            problems.push(format!("[video] source: {e}"));
        }
    }
    if let Err(e) = gst_backend::settings_from(&cfg) {
        problems.push(e.to_string());
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("{}: {p}", path.display());
        }
        bail!("{} problem(s) in {}", problems.len(), path.display())
    }
}

/// What can be checked of a token without the server's secret: its format and its (outer,
/// unauthenticated) expiry.
fn check_token(t: &str, problems: &mut Vec<String>) {
    use base64::Engine as _;
    let Some(body) = t.strip_prefix("04") else {
        problems.push("[identity] token: not a token04 token (it must start with \"04\")".into());
        return;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(body.trim()) else {
        problems.push("[identity] token: not valid base64 after \"04\"".into());
        return;
    };
    let Some(exp) = raw
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
    else {
        problems.push("[identity] token: too short".into());
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if exp < now {
        problems.push(format!(
            "[identity] token: expired {} s ago: mint a new one (roomcam-server token …)",
            now - exp
        ));
    }
}

/// The demo's certificate directory: the one given, else the user's state directory, else a
/// directory under the system's temp dir.
fn demo_tls_dir(given: Option<PathBuf>) -> PathBuf {
    if let Some(d) = given {
        return d;
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        });
    match state {
        Some(s) => s.join("roomcam/demo-tls"),
        None => std::env::temp_dir().join("roomcam-demo-tls"),
    }
}

/// Keeps (or makes) the demo's self-signed certificate in `dir`, valid for `hosts`; a kept one
/// that does not cover every host is replaced. Returns (cert path, key path).
fn demo_certificate(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join("demo.crt");
    let key = dir.join("demo.key");
    let kept = server::tls::load_certified_key(&cert, &key)
        .ok()
        .and_then(|ck| {
            let der = ck.end_entity_cert().ok()?.to_vec();
            let text = String::from_utf8_lossy(&der).to_string();
            // The SAN entries are stored as plain bytes in the DER: a DNS name appears verbatim,
            // an IP address as its octets.
            let covers = hosts.iter().all(|h| match h.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(v4)) => der.windows(4).any(|w| w == v4.octets()),
                Ok(std::net::IpAddr::V6(v6)) => der.windows(16).any(|w| w == v6.octets()),
                Err(_) => text.contains(h.as_str()),
            });
            covers.then_some(())
        });
    if kept.is_none() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the demo certificate", dir.display()))?;
        server::tls::self_signed(hosts)?.write(&cert, &key)?;
    }
    Ok((cert, key))
}

/// The address of the default route (a connected UDP socket sends nothing; it only asks the
/// routing table).
fn route_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// Names this machine is reached by: the listen address when it is specific, else the host
/// name and the address of the default route, plus the loopback names.
fn demo_hosts(listen: SocketAddr) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    } else {
        if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                hosts.push(h.to_string());
                hosts.push(format!("{h}.local"));
            }
        }
        if let Some(ip) = route_ip() {
            hosts.push(ip.to_string());
        }
    }
    hosts.dedup();
    hosts
}

fn demo(
    listen: SocketAddr,
    status: SocketAddr,
    no_device: bool,
    tls_dir: Option<PathBuf>,
) -> Result<()> {
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..32)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect()
    };
    // Browsers grant camera access only on HTTPS or localhost: beyond loopback the demo serves
    // HTTPS, so a laptop on the LAN can publish back.
    let tls = if listen.ip().is_loopback() {
        None
    } else {
        let dir = demo_tls_dir(tls_dir);
        Some(demo_certificate(&dir, &demo_hosts(listen))?)
    };
    let tls_section = match &tls {
        Some((cert, key)) => format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert, key),
        None => String::new(),
    };
    // On a wildcard address, advertise the LAN address for media too (and loopback for this
    // machine's own browser and device).
    let lan = listen.ip().is_unspecified().then(route_ip).flatten();
    let candidates = match lan {
        Some(ip) => format!("candidate_ips = [\"127.0.0.1\", \"{ip}\"]\n"),
        None => String::new(),
    };
    let text = format!(
        "listen = \"{listen}\"\ndev_token_endpoint = true\n[media]\nudp_port = 0\n{candidates}{tls_section}[[apps]]\napp_id = {DEMO_APP_ID}\nserver_secret = \"{secret}\"\n"
    );
    let config = ServerConfig::parse(&text, Path::new("<demo>"))?;
    let (http, ws) = if tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let listener = server::bind(&config).await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::run(listener, config, async move {
            let _ = stop_rx.await;
        }));
        // Printing must not kill the demo when nobody reads its output any more.
        let say = |s: String| {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        };
        // The one-click link: the page fetches a dev token (the endpoint answers loopback
        // callers only), logs in and plays every stream of room1.
        let watch = if addr.ip().is_unspecified() {
            let lo: std::net::IpAddr = if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            SocketAddr::new(lo, addr.port())
        } else {
            addr
        };
        // The address to give people: on a wildcard, the LAN address.
        let shown = match lan {
            Some(ip) => SocketAddr::new(ip, addr.port()),
            None => addr,
        };
        say(format!(
            "roomcam demo: room service on {http}://{shown}/ (app id {DEMO_APP_ID}, room room1)\n  \
             open that page, press \"Get dev token\", Login and Play the device's stream\n  \
             or watch at once: {http}://{watch}/?app_id={DEMO_APP_ID}&room_id=room1&autologin=1&autoplay=1\n  \
             WebSocket signalling: {ws}://{shown}/ws\n"
        ));
        if let Some((cert, _)) = &tls {
            let fingerprint = server::tls::load_certs(cert)
                .ok()
                .and_then(|c| c.first().map(|c| server::tls::fingerprint(c)))
                .unwrap_or_default();
            say(format!(
                "  HTTPS with a self-signed certificate: {}\n  \
                 SHA-256 fingerprint {fingerprint}\n  \
                 (check it in the browser's certificate warning before accepting; dev tokens are \
                 minted for this machine only, other machines need a token)\n",
                cert.display()
            ));
        }
        let device = if no_device {
            say("  (--no-device: the room service runs alone)\n".into());
            None
        } else {
            let token = roomcam::auth::token04::mint(
                &roomcam::auth::MintRequest {
                    app_id: DEMO_APP_ID,
                    user_id: "demo-device".into(),
                    room_id: None,
                    privileges: roomcam::auth::Privileges::default(),
                    stream_ids: vec![],
                    now_unix: server::hub::now().unix,
                    ttl_secs: 24 * 3600,
                },
                &secret,
                &mut rand::thread_rng(),
            )?;
            // A camera the device chooser would use (not merely a /dev/video0: on a Pi that is
            // often a raw sensor or codec node).
            let has_camera = !roomcam::devices::choose(
                &roomcam::devices::discover(),
                &roomcam::devices::Wanted::default(),
            )
            .video
            .is_empty();
            let sink = if roomcam::media::DisplaySink::desktop_present() {
                "window"
            } else if Path::new("/dev/dri/card0").exists() {
                "kms"
            } else {
                "none"
            };
            let playback = if Path::new("/dev/snd").exists() { "auto" } else { "none" };
            // The device reaches the embedded service over loopback, trusting its certificate.
            let server_section = match &tls {
                Some((cert, _)) => format!(
                    "[server]\nurl = \"wss://127.0.0.1:{}/ws\"\nca_file = {:?}\n",
                    addr.port(),
                    cert
                ),
                None => format!("[server]\nurl = \"ws://{addr}/ws\"\n"),
            };
            let dev_text = format!(
                "{server_section}[identity]\napp_id = {DEMO_APP_ID}\nuser_id = \"demo-device\"\nuser_name = \"roomcam demo\"\ntoken = \"{token}\"\n\
                 [room]\nid = \"room1\"\n[video]\nsource = \"{}\"\nwidth = 640\nheight = 480\n[audio]\ncapture = \"{}\"\nplayback = \"{playback}\"\n\
                 [display]\nsink = \"{sink}\"\n[status]\nlisten = \"{status}\"\n",
                if has_camera { "auto" } else { "test" },
                if Path::new("/dev/snd").exists() { "auto" } else { "test" },
            );
            let cfg = DeviceConfig::parse(&dev_text, Path::new("<demo device>"))?;
            say(format!(
                "  this device: user demo-device publishing stream demo-device-main ({}), display {sink}\n",
                if has_camera { "camera" } else { "test pattern and tone" }
            ));
            let (publish, play) = gst_backend::settings_from(&cfg)?;
            let backend = gst_backend::GstBackend::new(publish, play)?;
            let stats = backend.stats_reader();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let say2 = say;
            let task = tokio::spawn(device::run(
                cfg,
                Box::new(backend),
                Arc::clone(&stats),
                async move {
                    let _ = rx.await;
                },
                move |a| say2(format!("  device status: http://{a}/status\n")),
            ));
            Some((tx, task))
        };
        say("  Ctrl-C stops it.\n".into());
        let _ = tokio::signal::ctrl_c().await;
        if let Some((tx, task)) = device {
            let _ = tx.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        Ok(())
    })
}
