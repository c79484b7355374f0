//! The room service's logic, transport-free: rooms, users, streams and sessions per app id.

mod media;

pub use media::{MediaCommand, SessionId, StreamKey};
