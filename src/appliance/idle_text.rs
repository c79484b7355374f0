//! What the idle screen says, sans-IO: from the call state, the room, who else is in it and
//! whether our camera works, to one line of text ("Waiting in room1", "Anna is in the room —
//! press the button to join", "Connecting…", "Camera unavailable"). The device's run loop sets
//! it on the screen; the screen shows it whenever no participant is on it.

use super::status::CallState;

/// The idle card's text.
pub fn idle_text(
    state: CallState,
    room: &str,
    others: &[&str],
    camera_unavailable: bool,
) -> String {
    match state {
        CallState::Joining => "Connecting…".to_string(),
        CallState::Ending => "Leaving…".to_string(),
        CallState::Error => format!("Cannot join {room} — trying again"),
        CallState::Idle => format!("Press the button to join {room}"),
        CallState::InCall if camera_unavailable => "Camera unavailable".to_string(),
        CallState::InCall => format!("Waiting in {room}"),
        CallState::Standby => match others {
            [] => format!("Waiting in {room}"),
            [one] => format!("{one} is in the room — press the button to join"),
            [one, two] => format!("{one} and {two} are in the room — press the button to join"),
            [one, rest @ ..] => format!(
                "{one} and {} others are in the room — press the button to join",
                rest.len()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_texts() {
        assert_eq!(
            idle_text(CallState::InCall, "room1", &[], false),
            "Waiting in room1"
        );
        assert_eq!(
            idle_text(CallState::Standby, "room1", &["Anna"], false),
            "Anna is in the room — press the button to join"
        );
        assert_eq!(
            idle_text(CallState::Joining, "room1", &["Anna"], false),
            "Connecting…"
        );
        assert_eq!(
            idle_text(CallState::InCall, "room1", &[], true),
            "Camera unavailable"
        );
    }

    #[test]
    fn several_people_and_the_other_states() {
        assert_eq!(
            idle_text(CallState::Standby, "r", &["Anna", "Ben"], false),
            "Anna and Ben are in the room — press the button to join"
        );
        assert_eq!(
            idle_text(CallState::Standby, "r", &["Anna", "Ben", "Cleo"], false),
            "Anna and 2 others are in the room — press the button to join"
        );
        assert_eq!(
            idle_text(CallState::Standby, "r", &[], false),
            "Waiting in r"
        );
        assert!(idle_text(CallState::Error, "r", &[], false).contains("r"));
        assert!(idle_text(CallState::Idle, "r", &[], false).contains("button"));
    }
}
