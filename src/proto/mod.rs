//! The OpenVPN protocol core. It does no I/O and reads no clock: callers pass bytes and the
//! current time in, and get packets, events and deadlines back.

pub mod packet;
pub mod reliable;
pub mod wrap;
