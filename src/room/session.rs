//! Per-connection state: liveness, the message-rate limiter, and what a logged-in session holds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::SessionId;
use crate::auth::TokenClaims;

/// A token bucket: `rate` messages per second sustained, bursts of `2 * rate`.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Messages refused since the last accepted one.
    pub(crate) refused: u32,
    /// When an error about rate was last sent (errors are themselves limited to one a second).
    pub(crate) last_error: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        RateLimiter {
            rate,
            tokens: rate * 2.0,
            last: now,
            refused: 0,
            last_error: None,
        }
    }

    /// Takes one message's worth; false when over the limit.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate * 2.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused = self.refused.saturating_add(1);
            false
        }
    }

    /// Whether a rate-limit error may be sent now (at most one a second).
    pub(crate) fn may_report(&mut self, now: Instant) -> bool {
        match self.last_error {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(1) => false,
            _ => {
                self.last_error = Some(now);
                true
            }
        }
    }

    /// Refusals in a row after which the session is dropped.
    pub(crate) fn kick_threshold(&self) -> u32 {
        (self.rate as u32).saturating_mul(2).max(10)
    }
}

/// How a session proved who it is.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Token(TokenClaims),
    AppSign,
}

/// A session that is logged into a room.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) app_id: u32,
    pub(crate) room_id: String,
    pub(crate) user_id: String,
    pub(crate) user_name: String,
    pub(crate) user_updates: bool,
    pub(crate) credential: Credential,
    /// Whether token-will-expire was sent for the current token.
    pub(crate) warned: bool,
    pub(crate) published: BTreeSet<String>,
    pub(crate) playing: BTreeSet<String>,
}

impl Member {
    pub(crate) fn token_expire(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token(c) => Some(c.expire),
            Credential::AppSign => None,
        }
    }
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: SessionId,
    /// The app-sign challenge for this connection (hex).
    pub(crate) nonce: String,
    pub(crate) last_seen: Instant,
    pub(crate) rate: RateLimiter,
    pub(crate) member: Option<Member>,
}
