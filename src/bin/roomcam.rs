//! `roomcam`: the appliance. Thin: parse arguments, build, run.
//!
//! Today only `roomcam demo` runs, and it starts the embedded room service alone: the device
//! side (engine, capture, display) is not built yet.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use roomcam::server::{self, ServerConfig};

#[derive(Parser)]
#[command(name = "roomcam", version, about = "The roomcam video-call appliance")]
struct Cli {
    /// The device config file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run an embedded room service (and, once the device side exists, this device on it) and
    /// print the browser URL.
    Demo {
        /// Where the embedded room service listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

const DEMO_APP_ID: u32 = 1234567890;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo { listen }) => demo(listen),
        None => bail!(
            "the device side of roomcam (--config, check, devices) is not built yet; \
             `roomcam demo` runs the embedded room service"
        ),
    }
}

fn demo(listen: SocketAddr) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMCAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..32)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect()
    };
    let text = format!(
        "listen = \"{listen}\"\ndev_token_endpoint = true\n[media]\nudp_port = 0\n[[apps]]\napp_id = {DEMO_APP_ID}\nserver_secret = \"{secret}\"\n"
    );
    let config = ServerConfig::parse(&text, std::path::Path::new("<demo>"))?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let listener = server::bind(&config).await?;
        let addr = listener.local_addr()?;
        // Printing must not kill the demo when nobody reads its output any more.
        let banner = format!(
            "roomcam demo: room service on http://{addr}/ (app id {DEMO_APP_ID})\n  \
             WebSocket signalling: ws://{addr}/ws\n  \
             dev tokens: http://{addr}/api/dev-token?app_id={DEMO_APP_ID}&user_id=YOU&room_id=room1\n  \
             note: the device side (camera, screen) is not built yet; this runs the room service alone.\n  \
             Ctrl-C stops it.\n"
        );
        {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(banner.as_bytes());
            let _ = out.flush();
        }
        server::run(listener, config, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}
