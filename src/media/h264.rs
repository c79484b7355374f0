//! H.264 Annex-B helpers: pure, no GStreamer. The player uses them to hold back input until the
//! first IDR access unit, so nothing corrupt is decoded before the first keyframe.

/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit types of SPS and PPS.
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

/// The NAL units of an Annex-B byte stream (start codes `00 00 01` or `00 00 00 01`), without
/// their start codes. Bytes before the first start code are ignored.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // Trim the start code (3 bytes) and a leading zero of a 4-byte one.
            let mut e = s - 3;
            if e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| e > s)
        .map(move |(s, e)| &data[s..e])
}

/// NAL unit type (low 5 bits of the first byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Whether an access unit holds an IDR slice: a decoder can start here.
pub fn contains_idr(au: &[u8]) -> bool {
    nal_units(au).any(|n| nal_type(n) == Some(NAL_IDR))
}

/// The latest SPS and PPS seen on a stream, so a decoder can start at an IDR access unit that
/// arrives without them (a sender that put them in an earlier access unit, or an access unit cut
/// at the first packet the player received).
#[derive(Debug, Clone, Default)]
pub struct ParameterSets {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl ParameterSets {
    /// Remembers the SPS and PPS of `au` (the last of each wins).
    pub fn learn(&mut self, au: &[u8]) {
        for nal in nal_units(au) {
            match nal_type(nal) {
                Some(NAL_SPS) => self.sps = Some(nal.to_vec()),
                Some(NAL_PPS) => self.pps = Some(nal.to_vec()),
                _ => {}
            }
        }
    }

    /// An IDR access unit a decoder can start at: `au` itself when it carries an SPS and a PPS,
    /// else `au` with the remembered ones put in front, else `None` (no parameter sets known
    /// yet: keep waiting and ask for another keyframe).
    pub fn decodable_idr(&self, au: Vec<u8>) -> Option<Vec<u8>> {
        let has = |t: u8| nal_units(&au).any(|n| nal_type(n) == Some(t));
        if has(NAL_SPS) && has(NAL_PPS) {
            return Some(au);
        }
        let (sps, pps) = (self.sps.as_ref()?, self.pps.as_ref()?);
        let mut out = Vec::with_capacity(sps.len() + pps.len() + au.len() + 8);
        for nal in [sps, pps] {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out.extend_from_slice(&au);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idr_without_parameter_sets_waits_for_them_and_then_gets_them_in_front() {
        let idr_only = vec![0, 0, 0, 1, 0x65, 7, 7];
        let mut sets = ParameterSets::default();
        assert_eq!(
            sets.decodable_idr(idr_only.clone()),
            None,
            "nothing known yet"
        );
        // SPS and PPS came in an access unit of their own (held back by the player).
        sets.learn(&[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3]);
        let au = sets.decodable_idr(idr_only).expect("sets known");
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 7, 7][..]]
        );
        // A complete keyframe passes unchanged.
        let full = vec![
            0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x68, 8, 0, 0, 0, 1, 0x65, 1,
        ];
        assert_eq!(sets.decodable_idr(full.clone()), Some(full));
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(contains_idr(&au));
    }

    #[test]
    fn a_p_slice_is_not_a_keyframe() {
        assert!(!contains_idr(&[0, 0, 0, 1, 0x41, 9, 9, 9]));
        assert!(!contains_idr(&[]));
        assert!(!contains_idr(&[0x65, 0, 0]));
        // SPS/PPS alone are not a keyframe either.
        assert!(!contains_idr(&[0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2]));
    }
}
