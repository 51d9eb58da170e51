//! Stable error codes shared by every face.
//!
//! The worker maps them to its `{code,msg}` envelope and the npm package exposes them as
//! `err.code`; both need a string that never changes when a message is reworded.

/// A stable, SCREAMING_SNAKE identifier for an error, e.g. `SIGN_MISMATCH`.
pub trait ErrorCode {
    /// The identifier; part of the public contract of the npm package.
    fn code(&self) -> &'static str;
}
