//! # roomcam
//!
//! A video-call appliance for Raspberry Pi-class boards ("room camera") and the self-hostable
//! room service it calls through. The call model is the seed SDK's: an engine logs into a room,
//! publishes its camera and microphone as a stream, is told when users and streams come and go,
//! and plays the streams it wants.
//!
//! ## The parts
//!
//! | module | owns | I/O |
//! |---|---|---|
//! | [`protocol`] | signalling messages, id rules, error codes (shared by both sides) | none (sans-IO) |
//! | [`auth`] | token04 tokens, the app-sign challenge | none (sans-IO) |
//! | [`room`] | rooms, users, streams, sessions, limits: maps incoming frames to outgoing ones | none (sans-IO) |
//! | [`sfu`] | WebRTC sessions (str0m), RTP forwarding, keyframes, rate feedback | none (sans-IO) |
//! | `server` | axum HTTP/WebSocket, the UDP socket, metrics, config, shutdown | the adapter |
//! | [`devices`] | device listing; `auto`'s choice of camera, mic, speaker, encoder, display | none (sans-IO); `discover` reads the machine (feature `device`) |
//! | `media` | GStreamer capture, H.264/Opus encode and decode, display and speaker, ending at appsink/appsrc | the adapter (pure parts: stamp, tone, h264, playout, stats) |
//!
//! ## The run-loop contract
//!
//! Every sans-IO core follows str0m's model: the adapter feeds it input stamped with the time
//! (`handle_*(now, …)`), then drains `poll_output()` until it returns a timeout, and calls
//! `handle_timeout(now)` when that time comes. The cores own no sockets, threads, clocks or
//! files, so tests drive them on simulated time.
//!
//! Dependencies point inward: adapters (`server`, the binaries) use the cores; no core imports
//! tokio, sockets or files.

pub mod appliance;
pub mod auth;
pub mod devices;
pub mod engine;
pub mod ice_tcp;
pub mod protocol;
pub mod room;
// The SFU (issue 3) joins in its own commit.
pub mod sfu;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "device")]
pub mod media;
