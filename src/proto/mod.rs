//! The OpenVPN protocol core. It does no I/O and reads no clock.

pub mod data;
