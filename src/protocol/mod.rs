//! The signalling protocol shared by the device and the room service: message types, id rules
//! and error codes. Pure data and parsing; no I/O.

mod codes;
pub mod ids;
mod messages;

pub use codes::ErrorCode;
pub use messages::{
    ClientMessage, Login, PROTOCOL_VERSION, ParseError, ServerMessage, StreamInfo, TrackMids,
    UpdateType, UserInfo, parse_client_message,
};
