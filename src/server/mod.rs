//! The room service's I/O adapter: HTTP, WebSocket, metrics, config and shutdown, around the
//! sans-IO room logic ([`crate::room`]). `run` takes the listener and a shutdown future
//! (mini-redis style), so tests start it on `127.0.0.1:0` and stop it when they like.

pub mod config;
pub mod http;
pub mod hub;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
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
    let hub = Hub::new(config.room_config(), hub_rx);
    let hub_task = tokio::spawn(hub.run());
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
    result
}
