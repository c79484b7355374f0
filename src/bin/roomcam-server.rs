//! `roomcam-server`: the room service. Thin: parse arguments, load the config, run.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use roomcam::auth::{self, Privileges};
use roomcam::server::{self, ServerConfig};

#[derive(Parser)]
#[command(
    name = "roomcam-server",
    version,
    about = "The roomcam room service: signalling, auth, rooms and the SFU"
)]
struct Cli {
    /// The server config file (TOML); see config/roomcam-server.example.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Mint a token04 token (AES-256-GCM) for a user.
    Token {
        #[arg(long)]
        app_id: u32,
        /// The app's 32-character server secret.
        #[arg(long)]
        server_secret: String,
        #[arg(long)]
        user_id: String,
        /// Bind the token to one room (default: any room).
        #[arg(long)]
        room_id: Option<String>,
        /// Seconds the token is valid.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// What the token allows, comma separated.
        #[arg(long, default_value = "login,publish,play")]
        privilege: String,
        /// Stream ids the holder may publish (repeat; default: any).
        #[arg(long = "stream-id")]
        stream_id: Vec<String>,
    },
    /// Check a config file (and the [tls] certificate and key it names) and exit.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Generate a self-signed certificate and key for a test setup; prints the SHA-256
    /// fingerprint. Give devices the certificate as `[server] ca_file`.
    Selfsign {
        /// Host name or IP address the certificate is for (repeat for more).
        #[arg(long = "host", required = true)]
        host: Vec<String>,
        /// Where to write the certificate (PEM).
        #[arg(long, value_name = "FILE", default_value = "server.crt")]
        cert: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long, value_name = "FILE", default_value = "server.key")]
        key: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Errors are printed as one clear message (with their causes), never as a backtrace.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcam-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token {
            app_id,
            server_secret,
            user_id,
            room_id,
            ttl,
            privilege,
            stream_id,
        }) => {
            if ttl <= 0 {
                bail!("--ttl must be a positive number of seconds");
            }
            roomcam::protocol::ids::validate_user_id(&user_id)
                .map_err(|c| anyhow::anyhow!("--user-id: {}", c.description()))?;
            if let Some(r) = &room_id {
                roomcam::protocol::ids::validate_room_id(r)
                    .map_err(|c| anyhow::anyhow!("--room-id: {}", c.description()))?;
            }
            for s in &stream_id {
                roomcam::protocol::ids::validate_stream_id(s)
                    .map_err(|c| anyhow::anyhow!("--stream-id {s}: {}", c.description()))?;
            }
            let privileges = Privileges::parse_list(&privilege)
                .map_err(|e| anyhow::anyhow!("--privilege: {e}"))?;
            let now_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
            let req = auth::MintRequest {
                app_id,
                user_id,
                room_id,
                privileges,
                stream_ids: stream_id,
                now_unix,
                ttl_secs: ttl,
            };
            let token = auth::token04::mint(&req, &server_secret, &mut rand::thread_rng())
                .context("--server-secret")?;
            println!("{token}");
            Ok(())
        }
        Some(Command::Check { config }) => {
            let c = ServerConfig::load(&config)?;
            if let Some(t) = &c.tls {
                let store = server::tls::CertStore::load(&t.cert, &t.key)
                    .with_context(|| format!("{}: [tls]", config.display()))?;
                println!(
                    "{}: certificate SHA-256 fingerprint {}",
                    t.cert.display(),
                    store.fingerprint()
                );
            }
            println!("{}: ok", config.display());
            Ok(())
        }
        Some(Command::Selfsign {
            host,
            cert,
            key,
            force,
        }) => {
            for p in [&cert, &key] {
                if p.exists() && !force {
                    bail!(
                        "{} exists: not replacing it (give --force to replace)",
                        p.display()
                    );
                }
            }
            let s = server::tls::self_signed(&host)?;
            s.write(&cert, &key)?;
            println!("certificate: {}", cert.display());
            println!("key: {}", key.display());
            println!("SHA-256 fingerprint: {}", s.fingerprint);
            Ok(())
        }
        None => {
            let Some(path) = cli.config else {
                bail!(
                    "no config: run `roomcam-server --config FILE` (see config/roomcam-server.example.toml)"
                );
            };
            init_tracing();
            let config = ServerConfig::load(&path)?;
            let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
            rt.block_on(serve(path, config))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMCAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

async fn serve(path: PathBuf, config: ServerConfig) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = server::bind(&config).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (control_tx, control_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(server::run_with_control(
        listener,
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |c| {
            let _ = control_tx.send(c);
        },
    ));
    let control = control_rx.await.ok();
    let mut stop_tx = Some(stop_tx);
    let mut server = server;
    loop {
        tokio::select! {
            r = &mut server => {
                return r.context("server task failed")?.map_err(Into::into);
            }
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {
                match ServerConfig::load(&path) {
                    Ok(c) => {
                        tracing::info!(path = %path.display(), "config reloaded");
                        if let Some(ctl) = &control
                            && let Err(e) = ctl.reload(&c).await
                        {
                            tracing::error!(error = %e, "TLS reload failed; keeping the old certificate");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "config reload failed; keeping the old config"),
                }
                continue;
            }
        }
        match stop_tx.take() {
            Some(tx) => {
                tracing::info!("stopping (send the signal again to exit at once)");
                let _ = tx.send(());
            }
            None => {
                tracing::warn!("second stop signal: exiting now");
                std::process::exit(1);
            }
        }
    }
}
