//! Helpers shared by the integration tests. Each test file uses a part of them.
#![allow(dead_code)]

pub mod media;
pub mod server;
