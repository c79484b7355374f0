//! docs/protocol.md lists every error code, with the right number and name, and every message.

use roomcam::protocol::ErrorCode;

#[test]
fn every_error_code_is_in_the_docs_table() {
    let doc = include_str!("../docs/protocol.md");
    for c in ErrorCode::ALL {
        let row = format!("| {} | `{}` |", c.code(), c.name());
        assert!(doc.contains(&row), "docs/protocol.md lacks the row {row}");
    }
    let rows = doc.lines().filter(|l| l.starts_with("| 100")).count();
    assert_eq!(
        rows,
        ErrorCode::ALL.len(),
        "the table has codes the enum does not"
    );
}

#[test]
fn every_message_type_is_documented() {
    let doc = include_str!("../docs/protocol.md");
    for kind in roomcam::protocol::ClientMessage::KINDS {
        assert!(
            doc.contains(&format!("| `{kind}` |")),
            "client message {kind} undocumented"
        );
    }
}
