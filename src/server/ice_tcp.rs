//! The ICE-TCP listener (RFC 6544, passive candidates): a thin adapter. Each accepted
//! connection gets a task that deframes what it reads ([`crate::ice_tcp::Decoder`]) and hands
//! the packets to the hub as `(remote addr, Tcp)` — the path str0m knows from the STUN check
//! that arrives first — and writes the frames the hub sends it. The SFU decides everything.
//!
//! Limits: at most `[media] tcp_max_connections` connections at once (more are closed at
//! accept), frames of at most [`MAX_FRAME`] bytes, and a connection that delivers nothing for
//! [`IDLE_TIMEOUT`] is closed. A bad frame (zero length, oversize, not STUN/DTLS/RTP) closes
//! that connection only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::hub::HubEvent;
use crate::ice_tcp::Decoder;

/// Largest frame accepted from a peer.
pub const MAX_FRAME: usize = crate::ice_tcp::DEFAULT_MAX_FRAME;
/// A connection silent this long is closed (the device's ICE keepalives come every few
/// seconds; media far more often).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued towards one connection before further ones are dropped (like UDP loss; the
/// WebRTC layer recovers).
pub const WRITE_QUEUE: usize = 1024;

/// Binds the ICE-TCP listener next to the media UDP socket; `Ok(None)` when `port` is 0 (off).
pub async fn bind(
    bind_ip: IpAddr,
    port: u16,
    candidate_ips: &[IpAddr],
) -> std::io::Result<Option<(TcpListener, Vec<SocketAddr>)>> {
    if port == 0 {
        return Ok(None);
    }
    let listener = TcpListener::bind(SocketAddr::new(bind_ip, port)).await?;
    let port = listener.local_addr()?.port();
    let candidates = candidate_ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    Ok(Some((listener, candidates)))
}

/// Accepts connections until the hub goes away.
pub async fn accept_loop(listener: TcpListener, hub: mpsc::Sender<HubEvent>, max_conns: usize) {
    let slots = Arc::new(Semaphore::new(max_conns.max(1)));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if hub.is_closed() {
            return;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, max_conns, "ICE-TCP connection limit reached; closing");
            let _ = hub.try_send(HubEvent::TcpRefused);
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(connection(stream, remote, hub, permit));
    }
}

/// Why a connection's read side ended.
enum End {
    Closed,
    Idle,
    Io(std::io::Error),
    BadFrame(crate::ice_tcp::FrameError),
}

/// One connection: registers with the hub, then moves frames both ways until either side ends.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    hub: mpsc::Sender<HubEvent>,
    slot: OwnedSemaphorePermit,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if hub.send(HubEvent::TcpOpen { remote, tx }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut decoder = Decoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 8192];
    let end = 'read: loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, rd.read(&mut buf)).await {
            Err(_) => break 'read End::Idle,
            Ok(Err(e)) => break 'read End::Io(e),
            Ok(Ok(0)) => break 'read End::Closed,
            Ok(Ok(n)) => n,
        };
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame() {
            match frame {
                Ok(data) => {
                    let ev = HubEvent::TcpPacket {
                        remote,
                        local,
                        data,
                    };
                    if hub.send(ev).await.is_err() {
                        break 'read End::Closed;
                    }
                }
                Err(e) => break 'read End::BadFrame(e),
            }
        }
    };
    match &end {
        End::Closed => tracing::debug!(%remote, "ICE-TCP connection closed by the peer"),
        End::Idle => tracing::info!(%remote, "ICE-TCP connection idle; closing"),
        End::Io(e) => tracing::debug!(%remote, error = %e, "ICE-TCP connection failed"),
        End::BadFrame(e) => tracing::info!(%remote, error = %e, "closing an ICE-TCP connection"),
    }
    writer.abort();
    // The slot is free before the hub hears of it, so a count seen in metrics is never short.
    drop(slot);
    let _ = hub
        .send(HubEvent::TcpClosed {
            remote,
            bad_frame: matches!(end, End::BadFrame(_)),
        })
        .await;
}
