//! Codec policy: what an offer must carry, how the server's codec table is built, and how a
//! publisher's payload type maps onto a player's.
//!
//! The SFU forwards H.264 with packetization-mode 1 (constrained baseline 42e01f, baseline
//! 42001f, main 4d001f — what Chromium and our appliance send) and Opus; nothing is transcoded,
//! so every participant must speak these.

use str0m::RtcConfig;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Mid, Pt};

/// The H.264 profiles the SFU accepts, with the (PT, RTX PT) it offers for them.
const H264_PROFILES: &[(u8, u8, u32)] = &[
    (108, 109, 0x42e01f),
    (127, 121, 0x42001f),
    (123, 119, 0x4d001f),
];

/// The server's codec table: H.264 packetization-mode 1 in the profiles above, and Opus.
pub fn configure_codecs(config: RtcConfig) -> RtcConfig {
    let mut config = config.clear_codecs().enable_opus(true, false);
    let codecs = config.codec_config();
    for &(pt, rtx, profile) in H264_PROFILES {
        codecs.add_h264(pt.into(), Some(rtx.into()), true, profile);
    }
    config
}

/// Why an offer cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("a video m-line ({mid}) offers no H.264 with packetization-mode=1")]
    NoH264 { mid: String },
    #[error("an audio m-line ({mid}) offers no Opus")]
    NoOpus { mid: String },
}

/// Checks the codecs of each media section of an SDP offer: every active video section must offer
/// H.264 packetization-mode 1 (in an accepted profile), every active audio section Opus.
/// Data-channel-only and audio-only offers are fine. The SDP is read as text; str0m parses it
/// properly afterwards (and a parse failure there is `InvalidSdp`).
pub fn check_offer(sdp: &str) -> Result<(), OfferError> {
    for section in sdp.split("\nm=").skip(1) {
        let kind = section.split_whitespace().next().unwrap_or("");
        let port_zero = section.split_whitespace().nth(1) == Some("0");
        if port_zero || section.lines().any(|l| l.trim() == "a=inactive") {
            continue;
        }
        let mid = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=mid:"))
            .unwrap_or("?")
            .to_string();
        match kind {
            "video" if !has_h264_mode1(section) => return Err(OfferError::NoH264 { mid }),
            "audio" if !has_rtpmap(section, "opus/48000") => {
                return Err(OfferError::NoOpus { mid });
            }
            _ => {}
        }
    }
    Ok(())
}

fn rtpmap_pts<'a>(section: &'a str, codec: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    section.lines().filter_map(move |l| {
        let rest = l.trim().strip_prefix("a=rtpmap:")?;
        let (pt, enc) = rest.split_once(' ')?;
        enc.to_ascii_lowercase().starts_with(codec).then_some(pt)
    })
}

fn has_rtpmap(section: &str, codec: &str) -> bool {
    rtpmap_pts(section, codec).next().is_some()
}

fn has_h264_mode1(section: &str) -> bool {
    rtpmap_pts(section, "h264/90000").any(|pt| {
        let prefix = format!("a=fmtp:{pt} ");
        section.lines().any(|l| {
            let Some(fmtp) = l.trim().strip_prefix(prefix.as_str()) else {
                return false;
            };
            let fmtp = fmtp.to_ascii_lowercase();
            let mode1 = fmtp.contains("packetization-mode=1");
            let profile_ok = fmtp.split(';').any(|kv| {
                kv.trim()
                    .strip_prefix("profile-level-id=")
                    .and_then(|v| u32::from_str_radix(v, 16).ok())
                    .is_some_and(|p| {
                        let profile = p >> 8;
                        // profile_idc + constraint flags: 42e0, 4200, 4d00 (any level).
                        profile == 0x42e0 || profile == 0x4200 || profile == 0x4d00
                    })
            });
            mode1 && profile_ok
        })
    })
}

/// Picks the player's payload type for a publisher's `src` params on the player's m-line
/// `mid`: same codec and (for H.264) the same profile and packetization mode, among the PTs
/// negotiated on that m-line.
pub fn match_pt(player: &str0m::Rtc, mid: Mid, src: &PayloadParams) -> Option<Pt> {
    let media = player.media(mid)?;
    let negotiated = media.remote_pts();
    let spec = src.spec();
    let candidates = player
        .codec_config()
        .params()
        .iter()
        .filter(|p| negotiated.contains(&p.pt()) && p.spec().codec == spec.codec);
    let mut fallback = None;
    for p in candidates {
        if spec.codec != Codec::H264 {
            return Some(p.pt());
        }
        let f = p.spec().format;
        if f.packetization_mode == spec.format.packetization_mode {
            let same_profile = match (f.profile_level_id, spec.format.profile_level_id) {
                (Some(a), Some(b)) => a >> 8 == b >> 8,
                _ => false,
            };
            if same_profile {
                return Some(p.pt());
            }
            fallback.get_or_insert(p.pt());
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO_H264: &str = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";
    const VIDEO_VP8: &str =
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n";
    const AUDIO_OPUS: &str =
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn offers_are_checked_per_section() {
        assert_eq!(check_offer(VIDEO_H264), Ok(()));
        assert_eq!(check_offer(AUDIO_OPUS), Ok(()));
        assert!(matches!(
            check_offer(VIDEO_VP8),
            Err(OfferError::NoH264 { .. })
        ));
        let mode0 = VIDEO_H264.replace("packetization-mode=1", "packetization-mode=0");
        assert!(check_offer(&mode0).is_err());
        let high = VIDEO_H264.replace("42e01f", "64001f");
        assert!(check_offer(&high).is_err());
        let disabled = VIDEO_VP8.replace("m=video 9", "m=video 0");
        assert_eq!(check_offer(&disabled), Ok(()));
        assert_eq!(check_offer("garbage"), Ok(()));
    }
}
