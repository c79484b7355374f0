//! The media module's error type: every variant names what failed (element, setting, state).

/// Errors from building and running media pipelines.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer failed to initialise: {0}")]
    Init(String),
    #[error(
        "GStreamer element `{element}` ({purpose}) is not available: install its plugin or choose another setting"
    )]
    MissingElement {
        element: String,
        purpose: &'static str,
    },
    #[error("GStreamer element `{element}` exists but does not work here: {reason}")]
    UnusableElement { element: String, reason: String },
    #[error("setting {field} = {value:?} is invalid; expected {expected}")]
    Setting {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot link {from} -> {to}")]
    Link { from: String, to: String },
    #[error("pipeline `{pipeline}` did not reach {state} within {timeout_ms} ms")]
    StateChange {
        pipeline: String,
        state: &'static str,
        timeout_ms: u64,
    },
    #[error("pipeline `{pipeline}` element `{element}` failed: {message}{}", debug.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Pipeline {
        pipeline: String,
        element: String,
        message: String,
        debug: Option<String>,
    },
    /// An explicit device setting the machine cannot satisfy (`crate::devices::DeviceError`).
    #[error("{0}")]
    Device(String),
    #[error("pipeline `{0}` is not running")]
    NotRunning(String),
}
