//! The room service's I/O adapter: HTTP, WebSocket, metrics, config and shutdown, around the
//! sans-IO room logic ([`crate::room`]). `run` takes the listener and a shutdown future
//! (mini-redis style), so tests start it on `127.0.0.1:0` and stop it when they like.

pub mod config;
pub mod http;
pub mod hub;
pub mod ice_tcp;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use config::{ConfigError, ServerConfig};
use hub::{Hub, HubEvent};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot open the media UDP socket on {addr} ([media] udp_port): {source}")]
    BindUdp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the ICE-TCP listener on port {port} ([media] tcp_port): {source}")]
    BindTcp { port: u16, source: std::io::Error },
}

/// A handle to a running hub, for reloads from outside (SIGHUP).
#[derive(Clone)]
pub struct Control {
    hub: mpsc::Sender<HubEvent>,
}

impl Control {
    /// Applies a new config's room settings (apps, limits, revocations).
    pub async fn reload(&self, config: &ServerConfig) {
        let _ = self
            .hub
            .send(HubEvent::Reload {
                config: config.room_config(),
            })
            .await;
    }
}

/// Binds the listen address.
pub async fn bind(config: &ServerConfig) -> Result<TcpListener, ServerError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })
}

/// Serves until `shutdown` completes, then tells every session, closes them, and returns.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with_control(listener, config, shutdown, |_| {}).await
}

/// Like [`run`], handing a [`Control`] to `on_start` first.
pub async fn run_with_control(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(Control),
) -> Result<(), ServerError> {
    let (hub_tx, hub_rx) = mpsc::channel(4096);
    let (udp, tcp, sfu_config) = media_socket(&config).await?;
    let hub =
        Hub::new(config.room_config(), sfu_config, udp, hub_rx).map_err(ServerError::Serve)?;
    let hub_task = tokio::spawn(hub.run());
    let tcp_task = tcp.map(|l| {
        let max = config.media.tcp_max_connections;
        tokio::spawn(ice_tcp::accept_loop(l, hub_tx.clone(), max))
    });
    on_start(Control {
        hub: hub_tx.clone(),
    });
    let max = if config.limits.max_connections == 0 {
        10_000
    } else {
        config.limits.max_connections
    };
    let state = http::AppState {
        hub: hub_tx.clone(),
        config: Arc::new(config),
        connections: Arc::new(Semaphore::new(max)),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "room service listening");
    }
    let (drained_tx, drained_rx) = oneshot::channel::<()>();
    let shutdown_hub = hub_tx.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: telling every session");
        let (reply, done) = oneshot::channel();
        if shutdown_hub
            .send(HubEvent::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        }
        let _ = drained_tx.send(());
    };
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let serve = axum::serve(listener, app).with_graceful_shutdown(graceful);
    // Upgraded WebSocket connections are not tracked by the graceful shutdown; the hub's drain
    // above is what waits for them.
    let result = tokio::select! {
        r = serve => r.map_err(ServerError::Serve),
        _ = async { let _ = drained_rx.await; tokio::time::sleep(Duration::from_secs(3)).await; } => Ok(()),
    };
    drop(hub_tx);
    hub_task.abort();
    if let Some(t) = tcp_task {
        t.abort();
    }
    result
}

/// Opens the one media UDP socket (and the ICE-TCP listener when `[media] tcp_port` is set)
/// and works out the ICE candidates to advertise.
async fn media_socket(
    config: &ServerConfig,
) -> Result<(UdpSocket, Option<TcpListener>, crate::sfu::SfuConfig), ServerError> {
    let listen_ip = config.listen.ip();
    let bind_ip = if listen_ip.is_loopback() {
        listen_ip
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let addr = SocketAddr::new(bind_ip, config.media.udp_port);
    let udp = UdpSocket::bind(addr)
        .await
        .map_err(|source| ServerError::BindUdp { addr, source })?;
    let port = udp
        .local_addr()
        .map_err(|source| ServerError::BindUdp { addr, source })?
        .port();
    let ips: Vec<IpAddr> = if !config.media.candidate_ips.is_empty() {
        config.media.candidate_ips.clone()
    } else if !listen_ip.is_unspecified() {
        vec![listen_ip]
    } else {
        tracing::warn!(
            "[media] candidate_ips is empty and listen is a wildcard: advertising 127.0.0.1 only; \
             set candidate_ips to the addresses clients reach this server on"
        );
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    };
    let tcp_port = config.media.tcp_port;
    let (tcp, tcp_candidates) = match ice_tcp::bind(bind_ip, tcp_port, &ips).await {
        Ok(Some((l, c))) => (Some(l), c),
        Ok(None) => (None, Vec::new()),
        Err(source) => {
            return Err(ServerError::BindTcp {
                port: tcp_port,
                source,
            });
        }
    };
    let candidates: Vec<SocketAddr> = ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    tracing::info!(?candidates, ?tcp_candidates, "media sockets open");
    Ok((
        udp,
        tcp,
        crate::sfu::SfuConfig {
            candidates,
            tcp_candidates,
            ..Default::default()
        },
    ))
}
