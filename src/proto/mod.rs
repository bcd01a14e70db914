//! The OpenVPN protocol core: takes bytes and the current time, returns packets, events and
//! deadlines, and does no I/O.

pub mod client;
pub mod cookie;
pub mod data;
pub mod keymethod;
pub mod ncp;
pub mod packet;
pub mod prf;
pub mod push;
pub mod reliable;
pub mod session;
pub mod tls;
pub mod wrap;

#[cfg(test)]
pub(crate) mod test_pki;
