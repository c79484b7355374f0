//! The hub: one task that owns the room logic (and the media plane), fed by the connection
//! tasks through a channel. Each connection has a bounded outgoing queue; a session that does
//! not read its messages is dropped rather than buffered without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::{MediaCommand, Now, RoomConfig, RoomOutput, RoomService, SessionId};

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
    conns: HashMap<SessionId, mpsc::Sender<Outgoing>>,
    rx: mpsc::Receiver<HubEvent>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl Hub {
    pub fn new(config: RoomConfig, rx: mpsc::Receiver<HubEvent>) -> Self {
        let seed = rand::random();
        Hub {
            room: RoomService::new(config, seed),
            conns: HashMap::new(),
            rx,
            shutdown_waiters: Vec::new(),
        }
    }

    /// The event loop.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.rx.recv() => {
                    let Some(ev) = ev else { break };
                    self.handle(ev);
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
            HubEvent::Metrics { reply } => {
                let mut out = String::new();
                self.room.write_metrics(&mut out);
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
        while let Some(out) = self.room.poll_output() {
            match out {
                RoomOutput::Send { session, message } => {
                    let Some(tx) = self.conns.get(&session) else {
                        continue;
                    };
                    if tx.try_send(Outgoing::Message(message)).is_err() {
                        // Full (a session that does not read) or gone: drop it, never buffer.
                        tracing::warn!(%session, "outgoing queue full or closed; dropping session");
                        self.conns.remove(&session);
                        self.room.kick(session, ErrorCode::SlowConsumer);
                    }
                }
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
        tracing::debug!(?cmd, "media command (no media plane attached)");
    }
}
