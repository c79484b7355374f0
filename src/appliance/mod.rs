//! The appliance: the device config, the call logic around the engine, and the status report.

pub mod call;
pub mod config;
#[cfg(feature = "device")]
pub mod device;
#[cfg(feature = "device")]
pub mod gpio;
#[cfg(feature = "device")]
pub mod gst_backend;
pub mod idle_text;
pub mod status;
pub mod systemd;
#[cfg(feature = "device")]
pub mod volume;
