//! One WebRTC session (one str0m `Rtc`) per signalling session, and the guard that keeps a
//! panic inside str0m from taking the whole SFU down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::config::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::media::Mid;
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};

use super::SfuConfig;
use super::codec;
use crate::room::SessionId;

/// A passive ICE-TCP host candidate (RFC 6544): the peer connects to it.
pub(crate) fn passive_tcp_candidate(addr: SocketAddr) -> Result<Candidate, str0m::error::IceError> {
    Candidate::builder()
        .tcp()
        .host(addr)
        .tcptype(TcpType::Passive)
        .build()
}

/// A session's WebRTC state, created by its first SDP offer.
pub(crate) struct Session {
    pub id: SessionId,
    pub rtc: Rtc,
    /// When the first offer was applied (for the connect timeout).
    pub started: Instant,
    /// ICE + DTLS are up.
    pub connected: bool,
    /// Last datagram from the peer (for the idle timeout and for "stale player" rate feedback).
    pub last_receive: Instant,
    /// When str0m next wants `handle_input(Timeout)`.
    pub next_timeout: Instant,
    /// str0m's egress (TWCC) bandwidth estimate towards this peer.
    pub egress_estimate: Option<Bitrate>,
    /// Queued for `poll_output`.
    pub dirty: bool,
    /// Cumulative NACK counters last seen in str0m's stats, per m-line.
    pub egress_nacks: HashMap<Mid, u64>,
    pub ingress_nacks: HashMap<Mid, u64>,
}

impl Session {
    pub fn new(
        id: SessionId,
        now: Instant,
        config: &SfuConfig,
        crypto: &Arc<CryptoProvider>,
        dtls_cert: Option<&DtlsCert>,
    ) -> Self {
        let mut builder = codec::configure_codecs(Rtc::builder())
            .set_crypto_provider(crypto.clone())
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .enable_bwe(Some(Bitrate::bps(config.initial_player_bitrate_bps)))
            .set_stats_interval(Some(Duration::from_secs(1)));
        if let Some(cert) = dtls_cert {
            builder = builder.set_dtls_cert(cert.clone());
        }
        let mut rtc = builder.build(now);
        for addr in &config.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(session = %id, %addr, "unusable host candidate: {e}"),
            }
        }
        for addr in &config.tcp_candidates {
            match passive_tcp_candidate(*addr) {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(session = %id, %addr, "unusable ICE-TCP candidate: {e}"),
            }
        }
        Session {
            id,
            rtc,
            started: now,
            connected: false,
            last_receive: now,
            next_timeout: now,
            egress_estimate: None,
            dirty: false,
            egress_nacks: HashMap::new(),
            ingress_nacks: HashMap::new(),
        }
    }
}

/// A caught panic: the session it happened in must end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panicked;

/// Runs `f` (calls into one session's `Rtc`) and turns a panic into [`Panicked`].
pub(crate) fn guarded<R>(session: SessionId, f: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        let msg = e
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%session, "panic inside the WebRTC session, ending it: {msg}");
        Panicked
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_for_that_session_only() {
        let ok = guarded(SessionId(1), || 7);
        assert_eq!(ok.ok(), Some(7));
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r: Result<(), Panicked> = guarded(SessionId(2), || panic!("str0m bug"));
        std::panic::set_hook(prev);
        assert!(r.is_err());
    }
}
