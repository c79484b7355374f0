//! Fuzz target `config`: both config files from arbitrary text.
//!
//! The input (lossy UTF-8) is parsed as the device config (`appliance::config::DeviceConfig`,
//! with its line-numbered errors) and as the server config (`server::config::ServerConfig`).
//!
//! Invariants: no panic; a refusal is a `ConfigError` whose message names the file; a config
//! that parses is usable: the device config's derived values (stream id, name, credential,
//! video source) are computed, and a server config's room settings start a room service that
//! takes a connection, a frame and time passing (timeouts, the earliest deadline).
#![no_main]

use std::path::Path;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roomcam::appliance::config::DeviceConfig;
use roomcam::room::{Now, RoomOutput, RoomService};
use roomcam::server::config::ServerConfig;

fn device(text: &str) {
    match DeviceConfig::parse(text, Path::new("fuzz-device.toml")) {
        Ok(cfg) => {
            let _ = cfg.stream_id();
            let _ = cfg.user_name();
            let _ = cfg.auth();
            cfg.video
                .source()
                .expect("a validated config has a usable video source");
        }
        Err(e) => assert!(e.to_string().contains("fuzz-device.toml"), "{e}"),
    }
}

fn server(text: &str) {
    match ServerConfig::parse(text, Path::new("fuzz-server.toml")) {
        Ok(cfg) => {
            let room = cfg.room_config();
            let mut svc = RoomService::new(room, 1);
            let t0 = Instant::now();
            let now = Now {
                mono: t0,
                unix: 1_700_000_000,
            };
            let s = svc.connect(now);
            svc.handle_text(now, s, r#"{"type":"heartbeat"}"#);
            let _ = svc.poll_timeout();
            let later = Now {
                mono: t0 + Duration::from_secs(3600),
                unix: now.unix + 3600,
            };
            svc.handle_timeout(later);
            while let Some(o) = svc.poll_output() {
                if let RoomOutput::Send { message, .. } = o {
                    serde_json::to_string(&*message).expect("server messages serialize");
                }
            }
            let mut metrics = String::new();
            svc.write_metrics(&mut metrics);
        }
        Err(e) => assert!(e.to_string().contains("fuzz-server.toml"), "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    device(&text);
    server(&text);
});
