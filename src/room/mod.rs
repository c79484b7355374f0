//! The room service's logic, transport-free: rooms, users, streams and sessions per app id.
//!
//! [`RoomService`] maps (session, incoming frame, time) to outgoing messages, connection closes
//! and commands for the media plane ([`MediaCommand`]). It owns streams: the SFU only carries
//! what the room logic says exists.

mod config;
mod media;
mod service;
mod session;

pub use config::{AppConfig, Limits, RoomConfig};
pub use media::{MediaCommand, SessionId, StreamKey};
pub use service::{Now, RoomMetrics, RoomOutput, RoomService};
