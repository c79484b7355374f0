//! Length and character rules for room, user and stream ids (the seed SDK's rules).

use super::ErrorCode;

/// Longest room id, in bytes.
pub const MAX_ROOM_ID: usize = 128;
/// Longest user id, in bytes.
pub const MAX_USER_ID: usize = 64;
/// Longest user name, in bytes.
pub const MAX_USER_NAME: usize = 256;
/// Longest stream id, in bytes.
pub const MAX_STREAM_ID: usize = 256;
/// Longest stream extra info, in bytes.
pub const MAX_EXTRA_INFO: usize = 1024;

/// The punctuation allowed in room and user ids besides ASCII letters and digits.
const ID_PUNCTUATION: &str = "~!@#$%^&*()_+=-`;',.<>/\\";

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ID_PUNCTUATION.contains(c)
}

fn check(id: &str, max: usize, ok: fn(char) -> bool, err: ErrorCode) -> Result<(), ErrorCode> {
    if id.is_empty() || id.len() > max || !id.chars().all(ok) {
        return Err(err);
    }
    Ok(())
}

/// A room id: 1-128 bytes of letters, digits and `~!@#$%^&*()_+=-`;',.<>/\`.
pub fn validate_room_id(id: &str) -> Result<(), ErrorCode> {
    check(id, MAX_ROOM_ID, is_id_char, ErrorCode::InvalidRoomId)
}

/// A user id: 1-64 bytes, same characters as a room id.
pub fn validate_user_id(id: &str) -> Result<(), ErrorCode> {
    check(id, MAX_USER_ID, is_id_char, ErrorCode::InvalidUserId)
}

/// A stream id: 1-256 bytes of letters, digits, `-` and `_`.
pub fn validate_stream_id(id: &str) -> Result<(), ErrorCode> {
    check(
        id,
        MAX_STREAM_ID,
        |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
        ErrorCode::InvalidStreamId,
    )
}

/// A user name: at most 256 bytes of UTF-8 without control characters (may be empty).
pub fn validate_user_name(name: &str) -> Result<(), ErrorCode> {
    if name.len() > MAX_USER_NAME || name.chars().any(char::is_control) {
        return Err(ErrorCode::InvalidUserName);
    }
    Ok(())
}

/// Stream extra info: at most 1024 bytes.
pub fn validate_extra_info(info: &str) -> Result<(), ErrorCode> {
    if info.len() > MAX_EXTRA_INFO {
        return Err(ErrorCode::InvalidExtraInfo);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids() {
        assert!(validate_room_id("room1").is_ok());
        assert!(validate_room_id("a~!@#$%^&*()_+=-`;',.<>/\\z").is_ok());
        assert_eq!(validate_room_id(""), Err(ErrorCode::InvalidRoomId));
        assert_eq!(validate_room_id("has space"), Err(ErrorCode::InvalidRoomId));
        assert_eq!(validate_room_id("ümlaut"), Err(ErrorCode::InvalidRoomId));
        assert!(validate_room_id(&"r".repeat(128)).is_ok());
        assert_eq!(
            validate_room_id(&"r".repeat(129)),
            Err(ErrorCode::InvalidRoomId)
        );
    }

    #[test]
    fn user_ids_and_names() {
        assert!(validate_user_id(&"u".repeat(64)).is_ok());
        assert_eq!(
            validate_user_id(&"u".repeat(65)),
            Err(ErrorCode::InvalidUserId)
        );
        assert_eq!(validate_user_id("a\"b"), Err(ErrorCode::InvalidUserId));
        assert!(validate_user_name("Anna — living room").is_ok());
        assert!(validate_user_name("").is_ok());
        assert_eq!(validate_user_name("a\nb"), Err(ErrorCode::InvalidUserName));
        assert_eq!(
            validate_user_name(&"n".repeat(257)),
            Err(ErrorCode::InvalidUserName)
        );
    }

    #[test]
    fn stream_ids() {
        assert!(validate_stream_id("pi-livingroom_main").is_ok());
        assert_eq!(validate_stream_id("a.b"), Err(ErrorCode::InvalidStreamId));
        assert_eq!(validate_stream_id(""), Err(ErrorCode::InvalidStreamId));
        assert!(validate_stream_id(&"s".repeat(256)).is_ok());
        assert_eq!(
            validate_stream_id(&"s".repeat(257)),
            Err(ErrorCode::InvalidStreamId)
        );
    }
}
