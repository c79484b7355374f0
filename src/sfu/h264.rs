//! H.264 RTP payload inspection (RFC 6184): just enough to tell where a keyframe starts.
//! Nothing is depacketized; the SFU only peeks at NAL unit headers.

/// NAL unit types that matter for keyframe detection.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// True when this RTP payload begins a keyframe: an SPS or IDR slice as a single NAL unit,
/// inside a STAP-A aggregate, or as the first fragment of an FU-A.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        NAL_IDR | NAL_SPS => true,
        NAL_STAP_A => stap_a_types(&payload[1..]).any(|t| t == NAL_IDR || t == NAL_SPS),
        NAL_FU_A => match payload.get(1) {
            // S bit set and the fragmented unit is an IDR slice (or an SPS, odd but possible).
            Some(&fu) => fu & 0x80 != 0 && matches!(fu & 0x1f, NAL_IDR | NAL_SPS),
            None => false,
        },
        _ => false,
    }
}

/// True when this RTP payload carries an SPS (single NAL or inside a STAP-A): the first packet
/// of a keyframe as encoders that repeat SPS/PPS in-band (Chromium, rtph264pay
/// config-interval=-1) send it.
pub fn carries_sps(payload: &[u8]) -> bool {
    match payload.first().map(|b| b & 0x1f) {
        Some(NAL_SPS) => true,
        Some(NAL_STAP_A) => stap_a_types(&payload[1..]).any(|t| t == NAL_SPS),
        _ => false,
    }
}

/// The NAL unit types inside a STAP-A payload (after its own header byte). Stops at the
/// first malformed length rather than reading past the end.
fn stap_a_types(mut rest: &[u8]) -> impl Iterator<Item = u8> + '_ {
    std::iter::from_fn(move || {
        if rest.len() < 3 {
            return None;
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if len == 0 || rest.len() < 2 + len {
            return None;
        }
        let t = rest[2] & 0x1f;
        rest = &rest[2 + len..];
        Some(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_idr_sps_stap_a_and_fu_a_start() {
        assert!(starts_keyframe(&[0x65, 1, 2]));
        assert!(starts_keyframe(&[0x67, 0x42]));
        assert!(!starts_keyframe(&[0x41, 1, 2]));
        // STAP-A with SPS (2 bytes) and PPS (1 byte).
        assert!(starts_keyframe(&[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68]));
        // STAP-A with a truncated length does not panic.
        assert!(!starts_keyframe(&[0x78, 0, 9, 0x41]));
        // FU-A start of IDR vs middle fragment vs non-IDR.
        assert!(starts_keyframe(&[0x7c, 0x85, 0]));
        assert!(!starts_keyframe(&[0x7c, 0x05, 0]));
        assert!(!starts_keyframe(&[0x7c, 0x81, 0]));
        assert!(!starts_keyframe(&[]));
        assert!(!starts_keyframe(&[0x7c]));
    }
}
