//! The room service's config file (TOML). Unknown keys are an error naming the key and line;
//! every key is documented in `config/roomcam-server.example.toml`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth;
use crate::room::{AppConfig, Limits, RoomConfig};

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}\n(see config/roomcam-server.example.toml for every key)")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn d_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn d_skew() -> i64 {
    30
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP + WebSocket listen address.
    #[serde(default = "d_listen")]
    pub listen: SocketAddr,
    /// Serve plain HTTP on a non-loopback address (credentials would cross the network unencrypted).
    #[serde(default)]
    pub allow_insecure: bool,
    /// Accept legacy AES-CBC token04 tokens.
    #[serde(default)]
    pub allow_legacy_cbc_tokens: bool,
    /// Serve `GET /api/dev-token` (mints tokens for the browser page; loopback callers only).
    #[serde(default)]
    pub dev_token_endpoint: bool,
    /// Seconds of clock skew forgiven on token expiry.
    #[serde(default = "d_skew")]
    pub clock_skew_secs: i64,
    #[serde(default)]
    pub session: SessionSection,
    #[serde(default)]
    pub media: MediaSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub apps: Vec<AppSection>,
    pub tls: Option<TlsSection>,
}

/// `[session]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    pub heartbeat_interval_secs: u64,
    pub timeout_secs: u64,
    pub token_warning_secs: i64,
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            heartbeat_interval_secs: 10,
            timeout_secs: 30,
            token_warning_secs: 60,
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// The one UDP port for all WebRTC sessions (0 = any free port).
    pub udp_port: u16,
    /// ICE-TCP port for passive TCP candidates (RFC 6544), for networks that block UDP
    /// (0 = off).
    pub tcp_port: u16,
    /// ICE-TCP connections open at once; more are closed at accept.
    pub tcp_max_connections: usize,
    /// Addresses advertised as ICE candidates (default: the listen address when it is specific,
    /// else 127.0.0.1).
    pub candidate_ips: Vec<IpAddr>,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            udp_port: 50000,
            tcp_port: 0,
            tcp_max_connections: 256,
            candidate_ips: Vec::new(),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub users_per_room: usize,
    pub rooms_per_app: usize,
    pub message_bytes: usize,
    pub messages_per_second: u32,
    pub streams_per_session: usize,
    /// Open connections at once; more wait for a slot (0 = 10000).
    pub max_connections: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = Limits::default();
        LimitsSection {
            users_per_room: l.users_per_room,
            rooms_per_app: l.rooms_per_app,
            message_bytes: l.message_bytes,
            messages_per_second: l.messages_per_second,
            streams_per_session: l.streams_per_session,
            max_connections: 10_000,
        }
    }
}

/// `[[apps]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub app_id: u32,
    pub server_secret: String,
    #[serde(default)]
    pub app_sign: Option<String>,
    #[serde(default)]
    pub allow_app_sign: bool,
    #[serde(default)]
    pub revoked_users: Vec<String>,
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<ServerConfig, ConfigError> {
        let cfg: ServerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.apps.is_empty() {
            return Err("no [[apps]]: add at least one app with app_id and server_secret".into());
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.apps {
            if !seen.insert(a.app_id) {
                return Err(format!("[[apps]] app_id {} appears twice", a.app_id));
            }
            if !auth::token04::valid_secret(&a.server_secret) {
                return Err(format!(
                    "[[apps]] app_id {}: server_secret must be exactly 32 characters (it has {})",
                    a.app_id,
                    a.server_secret.len()
                ));
            }
            if let Some(sign) = &a.app_sign
                && !auth::appsign::valid_app_sign(sign)
            {
                return Err(format!(
                    "[[apps]] app_id {}: app_sign must be 64 hexadecimal digits",
                    a.app_id
                ));
            }
            if a.allow_app_sign && a.app_sign.is_none() {
                return Err(format!(
                    "[[apps]] app_id {}: allow_app_sign = true needs an app_sign",
                    a.app_id
                ));
            }
        }
        let l = &self.limits;
        for (name, v) in [
            ("users_per_room", l.users_per_room),
            ("rooms_per_app", l.rooms_per_app),
            ("message_bytes", l.message_bytes),
            ("messages_per_second", l.messages_per_second as usize),
            ("streams_per_session", l.streams_per_session),
        ] {
            if v == 0 {
                return Err(format!("[limits] {name} must be at least 1"));
            }
        }
        if l.message_bytes < 1024 {
            return Err(
                "[limits] message_bytes must be at least 1024 (an SDP offer is larger)".into(),
            );
        }
        if self.session.heartbeat_interval_secs == 0
            || self.session.timeout_secs <= self.session.heartbeat_interval_secs
        {
            return Err(
                "[session] timeout_secs must be larger than heartbeat_interval_secs (and both above 0)"
                    .into(),
            );
        }
        if !self.listen.ip().is_loopback() && !self.allow_insecure && self.tls.is_none() {
            return Err(format!(
                "listen = \"{}\" is not a loopback address: plain HTTP would carry tokens unencrypted. \
                 Configure [tls] cert/key, or set allow_insecure = true if a TLS proxy sits in front",
                self.listen
            ));
        }
        Ok(())
    }

    /// The room logic's part of the config.
    pub fn room_config(&self) -> RoomConfig {
        RoomConfig {
            apps: self
                .apps
                .iter()
                .map(|a| AppConfig {
                    app_id: a.app_id,
                    server_secret: a.server_secret.clone(),
                    app_sign: a.app_sign.clone(),
                    allow_app_sign: a.allow_app_sign,
                    revoked_users: a.revoked_users.clone(),
                })
                .collect(),
            limits: Limits {
                users_per_room: self.limits.users_per_room,
                rooms_per_app: self.limits.rooms_per_app,
                message_bytes: self.limits.message_bytes,
                messages_per_second: self.limits.messages_per_second,
                streams_per_session: self.limits.streams_per_session,
            },
            allow_legacy_cbc_tokens: self.allow_legacy_cbc_tokens,
            clock_skew_secs: self.clock_skew_secs,
            heartbeat_interval: Duration::from_secs(self.session.heartbeat_interval_secs),
            session_timeout: Duration::from_secs(self.session.timeout_secs),
            token_warning_secs: self.session.token_warning_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:0"
[[apps]]
app_id = 1
server_secret = "0123456789abcdef0123456789abcdef"
"#;

    fn parse(t: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse(t, Path::new("test.toml"))
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.limits.users_per_room, 50);
        assert_eq!(c.room_config().apps[0].app_id, 1);
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../config/roomcam-server.example.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.apps[0].app_id, 1234567890);
        assert_eq!(c.media.udp_port, 50000);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse(&format!("{GOOD}\nfavourite_colour = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("favourite_colour"), "{e}");
        assert!(e.contains("line"), "{e}");
        assert!(e.contains("test.toml"), "{e}");
    }

    #[test]
    fn short_secret_and_public_listen_are_refused() {
        let e = parse(&GOOD.replace("0123456789abcdef0123456789abcdef", "short"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("32 characters"), "{e}");
        let e = parse(&GOOD.replace("127.0.0.1:0", "0.0.0.0:8080"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_insecure"), "{e}");
        let e = parse("listen = \"127.0.0.1:0\"\n").unwrap_err().to_string();
        assert!(e.contains("[[apps]]"), "{e}");
    }
}
