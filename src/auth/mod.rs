//! Authentication: token04 tokens and the development-only app-sign challenge.
