//! The engine: the seed's Express-style call API for Rust programs (the appliance is built on
//! it). The call and session logic ([`EngineCore`]) is sans-IO, owning the device's WebRTC
//! session ([`MediaSession`], str0m); [`Engine`] is the thin tokio adapter that runs it over a
//! WebSocket and a UDP socket (or, when UDP is blocked, an ICE-TCP stream: `tcp_link`) and moves frames to and from a [`MediaBackend`].
//!
//! `docs/engine.md` maps each seed call and event to ours.

mod core;
mod events;
mod media_session;
mod media_worker;
mod runtime;
mod tcp_link;
pub mod wss;

pub use self::core::{
    Command, CoreOutput, Credential, DEFAULT_TCP_FALLBACK_AFTER, EngineConfig, EngineCore,
    EngineProfile,
};
pub use events::{Event, PlayerState, PublisherState, RoomState, RoomStateReason};
pub use media_session::{
    MediaOutput, MediaSession, Negotiation, ReceivedFrame, TrackKind, TrackOp,
};
pub use runtime::{
    CaptureControl, EncodedFrame, Engine, EngineError, EngineOptions, EngineStatus, MediaBackend,
    PlaybackSink, PlayerStatus, PublisherStatus,
};
