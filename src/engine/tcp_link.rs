//! The device's ICE-TCP stream (RFC 6544, active side): a thin tokio adapter. It connects to
//! the SFU's passive candidate when the core asks (`CoreOutput::TcpConnect`), frames what the
//! core sends and deframes what arrives ([`crate::ice_tcp`]); the core decides when and what.
//! Dropping the [`TcpLink`] closes the stream.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::ice_tcp::{self, Decoder};

/// Connecting gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for sending before further ones are dropped (like UDP loss).
const WRITE_QUEUE: usize = 1024;

/// What the stream reports to the runtime.
#[derive(Debug)]
pub enum LinkEvent {
    Connected { local: SocketAddr },
    Packet { source: SocketAddr, data: Vec<u8> },
    Closed(String),
}

/// A running ICE-TCP stream.
pub struct TcpLink {
    out: mpsc::Sender<Vec<u8>>,
    events: mpsc::Receiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpLink {
    /// Starts connecting to `destination`.
    pub fn connect(destination: SocketAddr) -> TcpLink {
        let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
        let (ev_tx, events) = mpsc::channel(1024);
        let task = tokio::spawn(run(destination, out_rx, ev_tx));
        TcpLink {
            out: out_tx,
            events,
            task,
        }
    }

    /// Queues one packet (framed here); dropped when the queue is full or it cannot be framed.
    pub fn send(&self, packet: &[u8]) {
        if let Ok(frame) = ice_tcp::encode(packet) {
            let _ = self.out.try_send(frame);
        }
    }

    /// The next report; `None` once the stream task has ended.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    destination: SocketAddr,
    mut out: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<LinkEvent>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(destination)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = events
                .send(LinkEvent::Closed(format!(
                    "cannot connect to {destination}: {e}"
                )))
                .await;
            return;
        }
        Err(_) => {
            let _ = events
                .send(LinkEvent::Closed(format!(
                    "connecting to {destination} timed out"
                )))
                .await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = events.send(LinkEvent::Closed(e.to_string())).await;
            return;
        }
    };
    if events.send(LinkEvent::Connected { local }).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    let writer = async move {
        while let Some(frame) = out.recv().await {
            wr.write_all(&frame).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let reader = async {
        let mut decoder = Decoder::new(ice_tcp::DEFAULT_MAX_FRAME);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = rd.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err::<(), String>("the server closed the ICE-TCP stream".into());
            }
            decoder.push(&buf[..n]);
            while let Some(frame) = decoder.next_frame() {
                let data = frame.map_err(|e| e.to_string())?;
                let ev = LinkEvent::Packet {
                    source: destination,
                    data,
                };
                if events.send(ev).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    let reason = tokio::select! {
        r = writer => match r {
            Ok(()) => return,
            Err(e) => e.to_string(),
        },
        r = reader => match r {
            Ok(()) => return,
            Err(e) => e,
        },
    };
    let _ = events.send(LinkEvent::Closed(reason)).await;
}
