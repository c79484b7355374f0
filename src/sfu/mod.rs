//! The SFU: one str0m `Rtc` per signalling session, RTP-mode forwarding between them.
