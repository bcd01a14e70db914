//! sslvpn: an OpenVPN-compatible SSL-VPN server.
//!
//! The module map is in `docs/architecture.md`.

pub mod config;
pub mod daemon;
pub mod proto;
