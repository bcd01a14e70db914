//! sslvpn: an OpenVPN-compatible SSL-VPN server.
//!
//! The module map is in `docs/architecture.md`.

pub mod admin;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod pki;
pub mod proto;
