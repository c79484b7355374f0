//! Authentication: token04 tokens (how devices authenticate) and the development-only
//! app-sign challenge. Pure functions over bytes and an explicit clock; no I/O.

pub mod appsign;
pub mod token04;

pub use token04::{
    DecodeOptions, MintError, MintRequest, Privileges, TokenClaims, TokenError, TokenMode,
};
