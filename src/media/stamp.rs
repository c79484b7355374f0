//! The frame stamp: a frame number and a capture time drawn into the luma plane of a raw picture
//! before it is encoded, and read back from the decoded picture. Pure functions over a luma plane
//! (any planar or semi-planar YUV format whose first plane is Y: I420, NV12, YV12, GRAY8).
//!
//! Layout: 64 blocks in two rows of 32 at the top-left corner, each block `block_size(width)`
//! pixels square (16 at 512 px wide and more). A block is white (luma 235) for 1 and black
//! (luma 16) for 0, so H.264 at a few hundred kbps keeps it: the reader averages the centre of each
//! block and thresholds at mid-grey. Bits, most significant first:
//!
//! | bits | what |
//! |---|---|
//! | 0..4 | sync `1011` |
//! | 4..20 | frame number (16 bits, wraps) |
//! | 20..52 | capture time, Unix ms mod 2^32 |
//! | 52..60 | CRC-8 (poly 0x07) over the 6 data bytes |
//! | 60..64 | sync `0100` |

/// What the stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Frame number, counted by the publisher from 0 and wrapping at 2^16.
    pub frame: u16,
    /// Capture wall-clock time in Unix milliseconds, mod 2^32.
    pub capture_ms: u32,
}

const BITS: usize = 64;
const PER_ROW: usize = 32;
const SYNC_HEAD: [bool; 4] = [true, false, true, true];
const SYNC_TAIL: [bool; 4] = [false, true, false, false];
const WHITE: u8 = 235;
const BLACK: u8 = 16;
const THRESHOLD: u32 = 128;

/// Side of one stamp block for a picture this wide, or `None` when the picture is too small to
/// carry a stamp (narrower than 64 pixels).
pub fn block_size(width: usize) -> Option<usize> {
    let block = (width / PER_ROW).min(16);
    (block >= 2).then_some(block)
}

/// Whether a `width` x `height` picture is large enough for a stamp.
pub fn fits(width: usize, height: usize) -> bool {
    block_size(width).is_some_and(|b| height >= 2 * b)
}

/// CRC-8, polynomial 0x07, initial value 0.
fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn data_bytes(stamp: Stamp) -> [u8; 6] {
    let f = stamp.frame.to_be_bytes();
    let c = stamp.capture_ms.to_be_bytes();
    [f[0], f[1], c[0], c[1], c[2], c[3]]
}

/// The 64 bits of a stamp, in drawing order.
pub fn encode_bits(stamp: Stamp) -> [bool; BITS] {
    let mut bits = [false; BITS];
    bits[..4].copy_from_slice(&SYNC_HEAD);
    let data = data_bytes(stamp);
    let crc = crc8(&data);
    let mut i = 4;
    for byte in data.iter().chain(std::iter::once(&crc)) {
        for k in (0..8).rev() {
            bits[i] = (byte >> k) & 1 == 1;
            i += 1;
        }
    }
    bits[60..].copy_from_slice(&SYNC_TAIL);
    bits
}

/// Decodes 64 bits back into a stamp; `None` when the sync bits or the CRC do not match.
pub fn decode_bits(bits: &[bool; BITS]) -> Option<Stamp> {
    if bits[..4] != SYNC_HEAD || bits[60..] != SYNC_TAIL {
        return None;
    }
    let mut bytes = [0u8; 7];
    for (n, byte) in bytes.iter_mut().enumerate() {
        for k in 0..8 {
            *byte = (*byte << 1) | u8::from(bits[4 + n * 8 + k]);
        }
    }
    if crc8(&bytes[..6]) != bytes[6] {
        return None;
    }
    Some(Stamp {
        frame: u16::from_be_bytes([bytes[0], bytes[1]]),
        capture_ms: u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
    })
}

/// Why a stamp could not be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("picture {width}x{height} is too small for a frame stamp")]
    TooSmall { width: usize, height: usize },
    #[error("luma plane of {len} bytes is too short for stride {stride} and height {height}")]
    ShortPlane {
        len: usize,
        stride: usize,
        height: usize,
    },
}

fn check(len: usize, stride: usize, width: usize, height: usize) -> Result<usize, StampError> {
    let block = match block_size(width) {
        Some(b) if height >= 2 * b => b,
        _ => return Err(StampError::TooSmall { width, height }),
    };
    let rows = 2 * block;
    if stride < PER_ROW * block || len < (rows - 1) * stride + PER_ROW * block {
        return Err(StampError::ShortPlane {
            len,
            stride,
            height: rows,
        });
    }
    Ok(block)
}

/// Draws `stamp` into the top-left corner of a luma plane.
pub fn write(
    luma: &mut [u8],
    stride: usize,
    width: usize,
    height: usize,
    stamp: Stamp,
) -> Result<(), StampError> {
    let block = check(luma.len(), stride, width, height)?;
    let bits = encode_bits(stamp);
    for y in 0..2 * block {
        let row = &mut luma[y * stride..y * stride + PER_ROW * block];
        let bit_row = &bits[(y / block) * PER_ROW..(y / block + 1) * PER_ROW];
        for (chunk, &bit) in row.chunks_exact_mut(block).zip(bit_row) {
            chunk.fill(if bit { WHITE } else { BLACK });
        }
    }
    Ok(())
}

/// Reads a stamp back from a (possibly lossy-coded) luma plane: `None` when there is none or it
/// does not check out.
pub fn read(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<Stamp> {
    let block = check(luma.len(), stride, width, height).ok()?;
    // Average the centre half of each block: edges blur first under compression.
    let lo = block / 4;
    let hi = (block - block / 4).max(lo + 1);
    let mut bits = [false; BITS];
    for (i, bit) in bits.iter_mut().enumerate() {
        let (by, bx) = (i / PER_ROW * block, i % PER_ROW * block);
        let (mut sum, mut n) = (0u32, 0u32);
        for y in by + lo..by + hi {
            let row = &luma[y * stride + bx + lo..y * stride + bx + hi];
            sum += row.iter().map(|&v| u32::from(v)).sum::<u32>();
            n += row.len() as u32;
        }
        *bit = sum > THRESHOLD * n;
    }
    decode_bits(&bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(width: usize, height: usize, stride: usize, fill: u8) -> Vec<u8> {
        let _ = width;
        vec![fill; stride * height]
    }

    #[test]
    fn bits_round_trip() {
        for stamp in [
            Stamp {
                frame: 0,
                capture_ms: 0,
            },
            Stamp {
                frame: u16::MAX,
                capture_ms: u32::MAX,
            },
            Stamp {
                frame: 12345,
                capture_ms: 0xdead_beef,
            },
        ] {
            assert_eq!(decode_bits(&encode_bits(stamp)), Some(stamp));
        }
    }

    #[test]
    fn a_flipped_bit_is_rejected() {
        let stamp = Stamp {
            frame: 7,
            capture_ms: 1_700_000_000,
        };
        for i in 0..64 {
            let mut bits = encode_bits(stamp);
            bits[i] = !bits[i];
            assert_eq!(decode_bits(&bits), None, "bit {i}");
        }
    }

    #[test]
    fn picture_round_trip_with_padding_stride() {
        let (w, h, stride) = (640, 480, 704);
        let mut luma = plane(w, h, stride, 128);
        let stamp = Stamp {
            frame: 300,
            capture_ms: 123_456_789,
        };
        write(&mut luma, stride, w, h, stamp).unwrap();
        assert_eq!(read(&luma, stride, w, h), Some(stamp));
        // Bytes outside the stamp are untouched.
        assert_eq!(luma[32 * stride + 5], 128);
        assert_eq!(luma[5 * stride + 600], 128);
    }

    #[test]
    fn survives_noise_and_blur_of_the_edges() {
        let (w, h) = (1280, 720);
        let mut luma = plane(w, h, w, 90);
        let stamp = Stamp {
            frame: 65535,
            capture_ms: 42,
        };
        write(&mut luma, w, w, h, stamp).unwrap();
        // Deterministic noise of +-60 everywhere, and grey edges on every block.
        let mut x = 1u32;
        for (i, v) in luma.iter_mut().enumerate() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let noise = (x >> 16) % 121;
            *v = (i32::from(*v) + noise as i32 - 60).clamp(0, 255) as u8;
            let (px, py) = (i % w, i / w);
            if py < 32 && px < 512 && (px % 16 == 0 || py % 16 == 0) {
                *v = 128;
            }
        }
        assert_eq!(read(&luma, w, w, h), Some(stamp));
    }

    #[test]
    fn a_picture_without_a_stamp_reads_none() {
        let (w, h) = (640, 480);
        assert_eq!(read(&plane(w, h, w, 16), w, w, h), None);
        assert_eq!(read(&plane(w, h, w, 235), w, w, h), None);
    }

    #[test]
    fn small_pictures_scale_the_blocks_or_refuse() {
        assert_eq!(block_size(640), Some(16));
        assert_eq!(block_size(320), Some(10));
        assert_eq!(block_size(40), None);
        let (w, h) = (320, 240);
        let mut luma = plane(w, h, w, 0);
        let stamp = Stamp {
            frame: 1,
            capture_ms: 2,
        };
        write(&mut luma, w, w, h, stamp).unwrap();
        assert_eq!(read(&luma, w, w, h), Some(stamp));
        let mut tiny = vec![0u8; 40 * 8];
        assert_eq!(
            write(&mut tiny, 40, 40, 8, stamp),
            Err(StampError::TooSmall {
                width: 40,
                height: 8
            })
        );
        let mut short = vec![0u8; 100];
        assert!(matches!(
            write(&mut short, 640, 640, 480, stamp),
            Err(StampError::ShortPlane { .. })
        ));
    }
}
