//! Why `sslvpn serve` stopped or could not start.
//!
//! Each message contains its cause, so the causes are not chained as `source` a second time.

use std::io;
use std::net::SocketAddr;

use crate::config::Protocol;

use super::credentials::CredentialsError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot install the {signal} handler: {error}")]
    Signal {
        signal: &'static str,
        error: io::Error,
    },
    #[error("SSL server {server:?}: cannot load the TLS credentials: {error}")]
    Credentials {
        server: String,
        error: CredentialsError,
    },
    #[error("SSL server {server:?}: cannot listen on {protocol} {address}: {error}; {fix}")]
    Bind {
        server: String,
        protocol: Protocol,
        address: SocketAddr,
        error: io::Error,
        fix: &'static str,
    },
    #[error("SSL server {server:?}: cannot prepare the control-channel protection: {error}")]
    Protection {
        server: String,
        error: crate::proto::session::SessionError,
    },
    #[error("SSL server {server:?}: cannot create TUN device {device}: {error}; {fix}")]
    CreateDevice {
        server: String,
        device: String,
        error: io::Error,
        fix: &'static str,
    },
    #[error(
        "SSL servers {first:?} and {second:?} both need TUN device {device}; rename one of them"
    )]
    DeviceNameClash {
        first: String,
        second: String,
        device: String,
    },
    #[error("SSL server {server:?}: reading TUN device {device} failed: {error}")]
    Device {
        server: String,
        device: String,
        error: io::Error,
    },
    #[error("SSL server {server:?}: cannot load the users of the local backend: {error}")]
    Users {
        server: String,
        error: crate::auth::users::UsersError,
    },
    #[error(
        "another sslvpn holds the lock of {}: stop the other daemon, or wait for the \
         sslvpn command that edits it",
        path.display()
    )]
    Locked { path: std::path::PathBuf },
    #[error("admin API: {0}")]
    Admin(String),
    #[error("an SSL server task stopped unexpectedly: {0}")]
    Task(String),
}

impl ServeError {
    /// Returns whether a server failed to start because the process lacks CAP_NET_ADMIN for
    /// TUN devices. Every server would fail the same way, and only a restart with the
    /// capability helps.
    pub(crate) fn lacks_privilege(&self) -> bool {
        match self {
            Self::CreateDevice { error, .. } => {
                matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES))
            }
            _ => false,
        }
    }
}

/// What to do about a failed bind.
pub(crate) fn bind_fix(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied => {
            "run as root or grant CAP_NET_BIND_SERVICE, or use a port above 1023"
        }
        io::ErrorKind::AddrInUse => {
            "another process uses this port: stop it or choose another port"
        }
        io::ErrorKind::AddrNotAvailable => {
            "listen_address is not an address of this host: use one of its addresses or 0.0.0.0"
        }
        _ => "check listen_address and port",
    }
}

/// What to do about a TUN device that could not be created or configured.
pub(crate) fn device_fix(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(libc::EPERM) => "run as root or grant CAP_NET_ADMIN",
        Some(libc::EACCES) => {
            "run as root, or grant CAP_NET_ADMIN and read-write access to /dev/net/tun"
        }
        Some(libc::ENOENT | libc::ENODEV) => "load the tun kernel module (modprobe tun)",
        Some(libc::EBUSY) => {
            "another process owns a device with this name: stop it (another sslvpn?)"
        }
        // The kernel returns EINVAL when a device of that name exists but is no TUN device or
        // has other flags.
        Some(libc::EINVAL) => {
            "a device with this name may exist already as another kind, such as a TAP \
             device: check `ip link show` and delete it (`ip link delete <name>`)"
        }
        _ => "check that /dev/net/tun exists and that the process has CAP_NET_ADMIN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device_error(error: io::Error) -> ServeError {
        ServeError::CreateDevice {
            server: "office".to_owned(),
            device: "svpn-office".to_owned(),
            fix: device_fix(&error),
            error,
        }
    }

    #[test]
    fn missing_capability_lacks_privilege() {
        for code in [libc::EPERM, libc::EACCES] {
            let error = device_error(io::Error::from_raw_os_error(code));
            assert!(error.lacks_privilege(), "{error}");
        }
    }

    #[test]
    fn other_start_errors_are_retryable() {
        for code in [libc::EBUSY, libc::EINVAL, libc::ENOENT] {
            let error = device_error(io::Error::from_raw_os_error(code));
            assert!(!error.lacks_privilege(), "{error}");
        }
        let bind = ServeError::Bind {
            server: "office".to_owned(),
            protocol: Protocol::Tcp,
            address: "0.0.0.0:443".parse().unwrap(),
            error: io::Error::from(io::ErrorKind::PermissionDenied),
            fix: "run as root or grant CAP_NET_BIND_SERVICE, or use a port above 1023",
        };
        assert!(!bind.lacks_privilege(), "a port change fixes {bind}");
    }

    #[test]
    fn bind_fix_names_capability() {
        let error = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(bind_fix(&error).contains("CAP_NET_BIND_SERVICE"));
    }

    #[test]
    fn bind_fix_names_port_in_use() {
        let error = io::Error::from(io::ErrorKind::AddrInUse);
        assert!(bind_fix(&error).contains("another process uses this port"));
    }

    #[test]
    fn device_fix_names_capability() {
        let error = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(device_fix(&error), "run as root or grant CAP_NET_ADMIN");
    }

    #[test]
    fn device_fix_names_device_file() {
        let error = io::Error::from_raw_os_error(libc::EACCES);
        assert!(device_fix(&error).contains("/dev/net/tun"));
    }

    #[test]
    fn device_fix_names_existing_device() {
        let error = io::Error::from_raw_os_error(libc::EINVAL);
        assert!(device_fix(&error).contains("ip link delete"));
    }

    #[test]
    fn device_fix_names_busy_device() {
        let error = io::Error::from_raw_os_error(libc::EBUSY);
        assert!(device_fix(&error).contains("another process owns"));
    }
}
