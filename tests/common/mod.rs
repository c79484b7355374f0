//! Helpers shared by the integration tests. Each test file uses a part of them.
#![allow(dead_code)]

pub mod audio;
pub mod callsim;
pub mod media;
pub mod rtc_client;
pub mod server;
pub mod sfu_net;
pub mod synthetic;

/// Logs to stderr when RUST_LOG is set (e.g. `RUST_LOG=roomcam=debug,str0m=debug`).
pub fn init_log() {
    use tracing_subscriber::EnvFilter;
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
