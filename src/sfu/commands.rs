//! Commands from the room logic, and the SDP offer/answer and trickle ICE of each session.
//! The room has validated logins, ids and privileges; the SFU trusts the commands.

use str0m::Candidate;
use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};

use super::session::{Session, guarded};
use super::stream::{Player, Stream};
use super::{Sfu, SfuOutput, codec};
use crate::protocol::{ErrorCode, ServerMessage, TrackMids};
use crate::room::{MediaCommand, SessionId, StreamKey};

fn mid_of(m: &Option<String>) -> Option<Mid> {
    m.as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 32)
        .map(Mid::from)
}

impl Sfu {
    pub(super) fn apply_command(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Publish {
                session,
                stream,
                mids,
            } => self.publish(session, stream, &mids),
            MediaCommand::Unpublish { session, stream } => {
                if self
                    .streams
                    .get(&stream)
                    .is_some_and(|s| s.publisher == session)
                {
                    self.remove_stream(&stream);
                }
            }
            MediaCommand::Play {
                session,
                stream,
                mids,
            } => self.play(session, stream, &mids),
            MediaCommand::StopPlay { session, stream } => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.players.retain(|p| p.session != session);
                }
            }
            MediaCommand::Offer { session, sdp } => self.offer(session, &sdp),
            MediaCommand::Candidate {
                session,
                candidate,
                sdp_mid,
            } => self.candidate(session, &candidate, sdp_mid),
            MediaCommand::SessionClosed { session } => {
                self.forget_session(session);
                self.failed.remove(&session);
            }
        }
    }

    fn signal(&mut self, session: SessionId, message: ServerMessage) {
        self.out.push_back(SfuOutput::Signal { session, message });
    }

    fn publish(&mut self, session: SessionId, key: StreamKey, mids: &TrackMids) {
        // A republish of the same id replaces the old stream (its players are told it stopped).
        self.remove_stream(&key);
        let video = mid_of(&mids.video);
        let audio = mid_of(&mids.audio);
        if let Some(m) = video {
            self.ingress
                .insert((session, m), (key.clone(), MediaKind::Video));
        }
        if let Some(m) = audio {
            self.ingress
                .insert((session, m), (key.clone(), MediaKind::Audio));
        }
        let stream = Stream::new(&key, session, video, self.config.keyframe_cache_packets);
        self.streams.insert(key, stream);
    }

    fn play(&mut self, session: SessionId, key: StreamKey, mids: &TrackMids) {
        let Some(stream) = self.streams.get_mut(&key) else {
            let msg = ServerMessage::error(
                ErrorCode::StreamNotFound,
                Some("play"),
                Some(&key.stream_id),
            );
            self.signal(session, msg);
            return;
        };
        stream.players.retain(|p| p.session != session);
        stream.players.push(Player::new(
            session,
            mid_of(&mids.video),
            mid_of(&mids.audio),
        ));
        self.start_players(session);
    }

    fn offer(&mut self, sid: SessionId, sdp: &str) {
        if self.failed.contains(&sid) {
            let msg = ServerMessage::error(ErrorCode::MediaSessionFailed, Some("offer"), None);
            self.signal(sid, msg);
            return;
        }
        if let Err(e) = codec::check_offer(sdp) {
            tracing::info!(session = %sid, "offer refused: {e}");
            let msg = ServerMessage::error(ErrorCode::NoCommonCodec, Some("offer"), None);
            self.signal(sid, msg);
            return;
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(session = %sid, "unparsable offer: {e}");
                let msg = ServerMessage::error(ErrorCode::InvalidSdp, Some("offer"), None);
                self.signal(sid, msg);
                return;
            }
        };
        let first = !self.sessions.contains_key(&sid);
        let session = self.sessions.entry(sid).or_insert_with(|| {
            Session::new(
                sid,
                self.now,
                &self.config,
                &self.crypto,
                self.dtls_cert.as_ref(),
            )
        });
        let result = guarded(sid, || session.rtc.sdp_api().accept_offer(offer));
        match result {
            Ok(Ok(answer)) => {
                let answer_sdp = answer.to_sdp_string();
                self.signal(sid, ServerMessage::Answer { sdp: answer_sdp });
                if first {
                    let first_mid = sdp
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("a=mid:"))
                        .map(str::to_string);
                    let udp = self
                        .config
                        .candidates
                        .iter()
                        .filter_map(|c| Candidate::host(*c, "udp").ok());
                    let tcp = self
                        .config
                        .tcp_candidates
                        .iter()
                        .filter_map(|c| super::session::passive_tcp_candidate(*c).ok());
                    let all: Vec<Candidate> = udp.chain(tcp).collect();
                    for cand in all {
                        {
                            let candidate = cand.to_sdp_string();
                            let message = ServerMessage::Candidate {
                                candidate,
                                sdp_mid: first_mid.clone(),
                            };
                            self.signal(sid, message);
                        }
                    }
                }
                self.mark_dirty(sid);
                self.start_players(sid);
            }
            Ok(Err(e)) => {
                tracing::info!(session = %sid, "offer not applicable: {e}");
                if first {
                    self.sessions.remove(&sid);
                }
                let msg = ServerMessage::error(ErrorCode::InvalidSdp, Some("offer"), None);
                self.signal(sid, msg);
            }
            Err(_) => {
                self.metrics.panics_caught += 1;
                self.fail(sid, ErrorCode::MediaSessionFailed);
            }
        }
    }

    fn candidate(&mut self, sid: SessionId, candidate: &str, _sdp_mid: Option<String>) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            let msg = ServerMessage::error(ErrorCode::NoMediaSession, Some("candidate"), None);
            self.signal(sid, msg);
            return;
        };
        let text = candidate.trim();
        let text = text.strip_prefix("a=").unwrap_or(text);
        if text.is_empty() {
            return; // end of candidates
        }
        let parsed = Candidate::from_sdp_string(text);
        match parsed {
            Ok(c) => {
                if guarded(sid, || session.rtc.add_remote_candidate(c)).is_err() {
                    self.metrics.panics_caught += 1;
                    self.fail(sid, ErrorCode::MediaSessionFailed);
                    return;
                }
                self.mark_dirty(sid);
            }
            Err(e) => {
                tracing::debug!(session = %sid, "bad candidate: {e}");
                let msg =
                    ServerMessage::error(ErrorCode::InvalidCandidate, Some("candidate"), None);
                self.signal(sid, msg);
            }
        }
    }
}
