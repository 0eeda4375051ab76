//! A container's streams: attaching to conmon's attach socket with
//! Docker-compatible framing and detach keys, and resizing its terminal.

pub(crate) mod attach;
