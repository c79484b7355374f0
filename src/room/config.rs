//! What the room logic is configured with (the server config's `[[apps]]`, `[limits]`, auth and
//! session settings), as plain values. Parsing the TOML is the server adapter's job.

use std::time::Duration;

/// One app: a namespace of rooms, users and streams with its own secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub app_id: u32,
    /// The 32-character server secret that keys token04.
    pub server_secret: String,
    /// The 64-hex-digit app sign (development only).
    pub app_sign: Option<String>,
    /// Whether app-sign logins are accepted.
    pub allow_app_sign: bool,
    /// User ids that may not log in; logged-in sessions of these users are kicked on reload.
    pub revoked_users: Vec<String>,
}

/// Limits that keep one client or app from taking the server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub users_per_room: usize,
    pub rooms_per_app: usize,
    /// Largest text frame accepted, in bytes.
    pub message_bytes: usize,
    /// Sustained messages per second per session (bursts of twice this are allowed).
    pub messages_per_second: u32,
    /// Streams one session may publish at once.
    pub streams_per_session: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            users_per_room: 50,
            rooms_per_app: 1000,
            message_bytes: 64 * 1024,
            messages_per_second: 50,
            streams_per_session: 4,
        }
    }
}

/// Everything the room logic needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub apps: Vec<AppConfig>,
    pub limits: Limits,
    pub allow_legacy_cbc_tokens: bool,
    /// Seconds of clock skew forgiven on token expiry.
    pub clock_skew_secs: i64,
    /// How often clients should send a heartbeat.
    pub heartbeat_interval: Duration,
    /// A session silent for this long is removed.
    pub session_timeout: Duration,
    /// How long before expiry a session is told to renew its token.
    pub token_warning_secs: i64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            apps: Vec::new(),
            limits: Limits::default(),
            allow_legacy_cbc_tokens: false,
            clock_skew_secs: 30,
            heartbeat_interval: Duration::from_secs(10),
            session_timeout: Duration::from_secs(30),
            token_warning_secs: 60,
        }
    }
}
