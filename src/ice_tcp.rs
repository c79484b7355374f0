//! ICE-TCP framing (RFC 6544 § 3, which uses RFC 4571): on a TCP connection every STUN, DTLS,
//! RTP or RTCP packet is preceded by its length as a 16-bit big-endian number. This module owns
//! the codec and the [`Transport`] tag the SFU and the engine put on every packet; sans-IO (the
//! server's and the device's TCP tasks feed it bytes as they arrive).
//!
//! A stream is refused (the caller closes that one connection) on a zero-length frame, a frame
//! longer than the configured cap, or a frame whose first byte is none of STUN (0-3), DTLS
//! (20-63) or RTP/RTCP (128-191) (RFC 7983 demultiplexing): after any of these the byte stream
//! cannot be trusted to be in step any more.

/// Which transport a media packet came in on or must go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A datagram on the media UDP socket.
    Udp,
    /// A frame on an ICE-TCP connection.
    Tcp,
}

impl Transport {
    /// "udp" or "tcp", as in SDP candidates and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest frame the 16-bit length can describe.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Default cap on a received frame: a media packet is at most a path MTU (str0m sends
/// ~1150-byte packets); 4 KiB leaves room and keeps a bad peer's buffer small.
pub const DEFAULT_MAX_FRAME: usize = 4096;

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("zero-length ICE-TCP frame")]
    Empty,
    #[error("ICE-TCP frame of {len} bytes exceeds the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    #[error("ICE-TCP frame starts with byte {first:#04x}: not STUN, DTLS or RTP")]
    Garbage { first: u8 },
}

/// Frames one packet for sending.
pub fn encode(packet: &[u8]) -> Result<Vec<u8>, FrameError> {
    if packet.is_empty() {
        return Err(FrameError::Empty);
    }
    let len = u16::try_from(packet.len()).map_err(|_| FrameError::TooLarge {
        len: packet.len(),
        max: MAX_FRAME_LEN,
    })?;
    let mut out = Vec::with_capacity(packet.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(out)
}

/// RFC 7983: whether a packet's first byte is one WebRTC carries on this path.
fn demuxable(first: u8) -> bool {
    matches!(first, 0..=3 | 20..=63 | 128..=191)
}

/// Splits a received byte stream into packets, whatever the read boundaries.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    max_frame: usize,
    failed: Option<FrameError>,
}

impl Decoder {
    /// A decoder refusing frames longer than `max_frame` bytes (capped at [`MAX_FRAME_LEN`]).
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            max_frame: max_frame.min(MAX_FRAME_LEN),
            failed: None,
        }
    }

    /// Bytes read from the stream. Drain [`Decoder::next_frame`] after each call: the buffer
    /// then never holds more than one partial frame plus the bytes of one read.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet, `None` when more bytes are needed, or the error that ended the
    /// stream (returned again on every later call).
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let err = if len == 0 {
            Some(FrameError::Empty)
        } else if len > self.max_frame {
            Some(FrameError::TooLarge {
                len,
                max: self.max_frame,
            })
        } else if let Some(&first) = rest.get(2)
            && !demuxable(first)
        {
            Some(FrameError::Garbage { first })
        } else {
            None
        };
        if let Some(e) = err {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
            self.pos = 0;
            return Some(Err(e));
        }
        if rest.len() < 2 + len {
            return None;
        }
        let frame = rest[2..2 + len].to_vec();
        self.pos += 2 + len;
        Some(Ok(frame))
    }

    /// Bytes held (for tests of the memory bound).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(n: usize) -> Vec<u8> {
        let mut v = vec![0u8, 1];
        v.resize(n, 0x42);
        v
    }

    fn rtp(n: usize) -> Vec<u8> {
        let mut v = vec![0x80u8];
        v.resize(n, 7);
        v
    }

    fn drain(d: &mut Decoder) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        while let Some(r) = d.next_frame() {
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn round_trip_one_byte_at_a_time() {
        let packets = [stun(20), rtp(1200), vec![22, 254, 253], rtp(1)];
        let mut wire = Vec::new();
        for p in &packets {
            wire.extend(encode(p).unwrap());
        }
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            got.extend(drain(&mut d).into_iter().map(Result::unwrap));
        }
        assert_eq!(got, packets.to_vec());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn coalesced_reads_and_split_length_prefix() {
        let a = encode(&rtp(300)).unwrap();
        let b = encode(&stun(28)).unwrap();
        let mut wire = a.clone();
        wire.extend(&b);
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        // Everything of a and the first byte of b's length.
        d.push(&wire[..a.len() + 1]);
        let got = drain(&mut d);
        assert_eq!(got, vec![Ok(rtp(300))]);
        assert_eq!(d.buffered(), 1);
        d.push(&wire[a.len() + 1..]);
        assert_eq!(drain(&mut d), vec![Ok(stun(28))]);
    }

    #[test]
    fn zero_length_frame_ends_the_stream() {
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        let mut wire = encode(&rtp(10)).unwrap();
        wire.extend([0, 0]);
        wire.extend(encode(&rtp(10)).unwrap());
        d.push(&wire);
        assert_eq!(drain(&mut d), vec![Ok(rtp(10)), Err(FrameError::Empty)]);
        // Stays failed; later bytes are ignored.
        d.push(&encode(&rtp(5)).unwrap());
        assert_eq!(d.next_frame(), Some(Err(FrameError::Empty)));
        assert_eq!(d.buffered(), 0);
        assert_eq!(encode(&[]), Err(FrameError::Empty));
    }

    #[test]
    fn oversize_frame_is_refused_before_it_is_buffered() {
        let mut d = Decoder::new(1500);
        // Only the length prefix has arrived: refused at once, nothing more is kept.
        d.push(&[0x10, 0x00]);
        assert_eq!(
            d.next_frame(),
            Some(Err(FrameError::TooLarge {
                len: 4096,
                max: 1500
            }))
        );
        assert_eq!(d.buffered(), 0);
        assert!(matches!(
            encode(&vec![0x80; MAX_FRAME_LEN + 1]),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(encode(&vec![0x80; MAX_FRAME_LEN]).unwrap().len(), 65537);
        // The cap is never above what the length field can say.
        assert_eq!(Decoder::new(usize::MAX).max_frame, MAX_FRAME_LEN);
    }

    #[test]
    fn garbage_is_refused() {
        // An HTTP request sent to the ICE-TCP port: "GE" reads as a 18245-byte length.
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        d.push(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(
            d.next_frame(),
            Some(Err(FrameError::TooLarge { len: 18245, .. }))
        ));
        // A plausible length followed by a byte that is no WebRTC packet.
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        d.push(&[0, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(
            d.next_frame(),
            Some(Err(FrameError::Garbage { first: b'h' }))
        );
        // Only the length so far: wait for the first byte.
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        d.push(&[0, 5]);
        assert_eq!(d.next_frame(), None);
        d.push(&[64]);
        assert_eq!(d.next_frame(), Some(Err(FrameError::Garbage { first: 64 })));
    }
}
