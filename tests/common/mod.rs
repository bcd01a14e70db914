//! Shared helpers of the integration tests.
//!
//! - [`cli`]: the `sslvpn` binary run against a config file, with checks of its exit status.
//! - [`netns`]: a test bed of three network namespaces (client, gateway, host) joined by veth
//!   pairs, removed again on drop.
//! - [`process`]: processes started inside a namespace, with their output in a log file,
//!   killed on drop.
//! - [`tools`]: the check for root, `/dev/net/tun` and the external programs, and the
//!   absolute paths of those programs.
//! - [`openvpn`]: certificates, static keys and command lines for the reference OpenVPN.
//! - [`pcap`]: a reader of classic libpcap files that yields UDP payloads and TCP streams.
//! - [`capture`]: the OpenVPN packets of the committed capture fixtures.
//!
//! Every test binary compiles this whole module but uses only part of it.
#![allow(dead_code)]

pub mod capture;
pub mod cli;
pub mod gateway;
pub mod netns;
pub mod openvpn;
pub mod pcap;
pub mod process;
pub mod tools;

#[allow(unused_imports)]
pub use netns::{BedConfig, Ns, TestBed, Throughput};
#[allow(unused_imports)]
pub use process::Process;
#[allow(unused_imports)]
pub use tools::require_root_and_tools;
