//! The hub: one task that owns the room logic and the media plane (the SFU) and the media UDP
//! socket, fed by the connection tasks through a channel. Each connection has a bounded
//! outgoing queue; a session that does not read its messages is dropped rather than buffered
//! without bound. The room's media commands go to the SFU in order, and the SFU's signalling
//! (answers, candidates, media errors) goes out through the same connection queues.
//! ICE-TCP connections ([`super::ice_tcp`]) register here by remote address; the SFU's TCP
//! transmits are framed and queued to the connection with that address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::ice_tcp::{self, Transport};
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::{MediaCommand, Now, RoomConfig, RoomOutput, RoomService, SessionId};
use crate::sfu::{Sfu, SfuConfig, SfuOutput};

/// Per-connection outgoing queue length (messages).
pub const OUTGOING_QUEUE: usize = 512;

/// What the hub sends a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    Message(Arc<ServerMessage>),
    Close,
}

/// What connection tasks and the HTTP layer send the hub.
#[derive(Debug)]
pub enum HubEvent {
    Connect {
        tx: mpsc::Sender<Outgoing>,
        reply: oneshot::Sender<SessionId>,
    },
    Text {
        session: SessionId,
        text: String,
    },
    Binary {
        session: SessionId,
    },
    Disconnect {
        session: SessionId,
    },
    Metrics {
        reply: oneshot::Sender<String>,
    },
    Reload {
        config: RoomConfig,
    },
    /// An ICE-TCP connection was accepted; frames for `remote` go to `tx`.
    TcpOpen {
        remote: SocketAddr,
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// One deframed packet from an ICE-TCP connection (`local` = the address it was accepted on).
    TcpPacket {
        remote: SocketAddr,
        local: SocketAddr,
        data: Vec<u8>,
    },
    /// An ICE-TCP connection ended (`bad_frame`: closed for a framing error).
    TcpClosed {
        remote: SocketAddr,
        bad_frame: bool,
    },
    /// An ICE-TCP connection was closed at accept: the connection limit was reached.
    TcpRefused,
    /// Kick everyone and reply when the last session is gone.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The time now, for the cores.
pub fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Now {
        mono: Instant::now(),
        unix,
    }
}

/// Owns the room logic; runs until every sender is gone.
pub struct Hub {
    room: RoomService,
    sfu: Sfu,
    udp: Arc<UdpSocket>,
    udp_local: SocketAddr,
    sfu_timeout: Option<Instant>,
    conns: HashMap<SessionId, mpsc::Sender<Outgoing>>,
    /// Open ICE-TCP connections by remote address.
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    tcp_stats: TcpStats,
    rx: mpsc::Receiver<HubEvent>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl Hub {
    pub fn new(
        config: RoomConfig,
        sfu: SfuConfig,
        udp: UdpSocket,
        rx: mpsc::Receiver<HubEvent>,
    ) -> std::io::Result<Self> {
        let seed = rand::random();
        let udp_local = udp.local_addr()?;
        Ok(Hub {
            room: RoomService::new(config, seed),
            sfu: Sfu::new(sfu),
            udp: Arc::new(udp),
            udp_local,
            sfu_timeout: None,
            conns: HashMap::new(),
            tcp: HashMap::new(),
            tcp_stats: TcpStats::default(),
            rx,
            shutdown_waiters: Vec::new(),
        })
    }

    /// The event loop.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 2048];
        let udp = self.udp.clone();
        loop {
            let sfu_deadline = self
                .sfu_timeout
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                ev = self.rx.recv() => {
                    let Some(ev) = ev else { break };
                    self.handle(ev);
                }
                r = udp.recv_from(&mut buf) => {
                    match r {
                        Ok((n, source)) => {
                            self.sfu.handle_receive(Instant::now(), source, self.udp_local, &buf[..n]);
                        }
                        Err(e) => tracing::debug!(error = %e, "media socket receive error"),
                    }
                }
                _ = tokio::time::sleep_until(sfu_deadline.into()) => {
                    self.sfu.handle_timeout(Instant::now());
                }
                _ = tick.tick() => {
                    self.room.handle_timeout(now());
                }
            }
            self.drain();
            if !self.shutdown_waiters.is_empty() && self.conns.is_empty() {
                for w in self.shutdown_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
    }

    fn handle(&mut self, ev: HubEvent) {
        let t = now();
        match ev {
            HubEvent::Connect { tx, reply } => {
                let id = self.room.connect(t);
                self.conns.insert(id, tx);
                // The connection task may have gone already; its Disconnect will follow.
                let _ = reply.send(id);
            }
            HubEvent::Text { session, text } => self.room.handle_text(t, session, &text),
            HubEvent::Binary { session } => self.room.handle_binary(t, session),
            HubEvent::Disconnect { session } => {
                self.room.disconnect(t, session);
                self.conns.remove(&session);
            }
            HubEvent::TcpOpen { remote, tx } => {
                self.tcp_stats.accepted += 1;
                self.tcp.insert(remote, tx);
            }
            HubEvent::TcpPacket {
                remote,
                local,
                data,
            } => {
                self.sfu
                    .handle_receive_on(Instant::now(), Transport::Tcp, remote, local, &data);
            }
            HubEvent::TcpClosed { remote, bad_frame } => {
                self.tcp.remove(&remote);
                if bad_frame {
                    self.tcp_stats.bad_frames += 1;
                }
            }
            HubEvent::TcpRefused => self.tcp_stats.refused += 1,
            HubEvent::Metrics { reply } => {
                let mut out = String::new();
                self.room.write_metrics(&mut out);
                self.sfu.write_metrics(&mut out);
                self.tcp_stats.write(self.tcp.len(), &mut out);
                let _ = reply.send(out);
            }
            HubEvent::Reload { config } => self.room.reload(config),
            HubEvent::Shutdown { reply } => {
                self.room.shutdown();
                self.shutdown_waiters.push(reply);
            }
        }
    }

    fn drain(&mut self) {
        loop {
            self.drain_room();
            if !self.drain_sfu() {
                break;
            }
        }
    }

    fn deliver(&mut self, session: SessionId, message: Arc<ServerMessage>) {
        let Some(tx) = self.conns.get(&session) else {
            return;
        };
        if tx.try_send(Outgoing::Message(message)).is_err() {
            // Full (a session that does not read) or gone: drop it, never buffer.
            tracing::warn!(%session, "outgoing queue full or closed; dropping session");
            self.conns.remove(&session);
            self.room.kick(session, ErrorCode::SlowConsumer);
        }
    }

    /// Drains the SFU; true when that produced work for the room logic.
    fn drain_sfu(&mut self) -> bool {
        let mut room_work = false;
        loop {
            match self.sfu.poll_output() {
                SfuOutput::Transmit {
                    transport: Transport::Udp,
                    destination,
                    contents,
                    ..
                } => {
                    // UDP semantics: a datagram the kernel cannot take now is lost, and the
                    // WebRTC layer (NACK, rate control) deals with it.
                    let _ = self.udp.try_send_to(&contents, destination);
                }
                SfuOutput::Transmit {
                    transport: Transport::Tcp,
                    destination,
                    contents,
                    ..
                } => {
                    // The same loss semantics on a full write queue: whole frames only.
                    if let (Some(tx), Ok(frame)) =
                        (self.tcp.get(&destination), ice_tcp::encode(&contents))
                    {
                        let _ = tx.try_send(frame);
                    }
                }
                SfuOutput::Signal { session, message } => {
                    // The room logic owns stream lifetimes and already told the players.
                    if matches!(message, ServerMessage::PlayStopped { .. }) {
                        continue;
                    }
                    self.deliver(session, Arc::new(message));
                }
                SfuOutput::SessionFailed { session, code } => {
                    tracing::info!(%session, %code, "media session failed; ending the session");
                    self.room.kick(session, code);
                    room_work = true;
                }
                SfuOutput::Timeout(t) => {
                    self.sfu_timeout = Some(t);
                    break;
                }
            }
        }
        room_work
    }

    fn drain_room(&mut self) {
        while let Some(out) = self.room.poll_output() {
            match out {
                RoomOutput::Send { session, message } => self.deliver(session, message),
                RoomOutput::Close { session } => {
                    if let Some(tx) = self.conns.remove(&session) {
                        let _ = tx.try_send(Outgoing::Close);
                    }
                }
                RoomOutput::Media(cmd) => self.media(cmd),
            }
        }
    }

    fn media(&mut self, cmd: MediaCommand) {
        self.sfu.handle_command(Instant::now(), cmd);
    }
}

/// ICE-TCP connection counters.
#[derive(Debug, Default)]
struct TcpStats {
    accepted: u64,
    refused: u64,
    bad_frames: u64,
}

impl TcpStats {
    fn write(&self, open: usize, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# TYPE roomcam_ice_tcp_connections gauge\nroomcam_ice_tcp_connections {open}\n\
             # TYPE roomcam_ice_tcp_accepted_total counter\nroomcam_ice_tcp_accepted_total {}\n\
             # TYPE roomcam_ice_tcp_refused_total counter\nroomcam_ice_tcp_refused_total {}\n\
             # TYPE roomcam_ice_tcp_bad_frames_total counter\nroomcam_ice_tcp_bad_frames_total {}",
            self.accepted, self.refused, self.bad_frames
        );
    }
}
