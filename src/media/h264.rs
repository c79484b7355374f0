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

#[cfg(test)]
mod tests {
    use super::*;

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
