//! SPDY/3.1 as Kubernetes speaks it (moby/spdystream): framing and the server session.

pub(crate) mod frame;
pub(crate) mod session;

pub(crate) use session::{ServerStream, Session};

#[cfg(test)]
mod proptests;
