//! Certificates, static keys and command lines for the reference OpenVPN server and client.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipnet::Ipv4Net;

use super::tools::resolve;

/// The port the reference server listens on.
pub const PORT: u16 = 1194;

/// Line that OpenVPN logs once its tunnel is up, on the server and on the client.
pub const INITIALIZED: &str = "Initialization Sequence Completed";

/// Extensions of the test certificates, in `openssl` configuration syntax. The key usages
/// match what `remote-cert-tls server` and `remote-cert-tls client` require.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A CA with one server and one client certificate, all ECDSA P-256, as PEM files.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Generates the CA and the certificates with `openssl` into `dir`. The client
    /// certificate's common name is `client_name`.
    pub fn generate(dir: &Path, client_name: &str) -> Self {
        let config = dir.join("openssl.cnf");
        std::fs::write(&config, OPENSSL_CONFIG).expect("write the openssl configuration");
        let config = config.to_string_lossy().into_owned();

        let ca_key = generate_key(dir, "ca");
        let ca_cert = dir.join("ca.crt");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-x509",
                "-config",
                &config,
                "-extensions",
                "ca",
                "-key",
                &ca_key,
                "-subj",
                "/CN=sslvpn test CA",
                "-days",
                "3650",
                "-out",
            ],
            &ca_cert,
        );
        let ca_cert_text = ca_cert.to_string_lossy().into_owned();
        let sign = |name: &str, subject: &str, section: &str, serial: &str| {
            let key = generate_key(dir, name);
            let csr = dir.join(format!("{name}.csr"));
            openssl(
                dir,
                &[
                    "req", "-new", "-config", &config, "-key", &key, "-subj", subject, "-out",
                ],
                &csr,
            );
            let cert = dir.join(format!("{name}.crt"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr.to_string_lossy(),
                    "-CA",
                    &ca_cert_text,
                    "-CAkey",
                    &ca_key,
                    "-set_serial",
                    serial,
                    "-days",
                    "3650",
                    "-extfile",
                    &config,
                    "-extensions",
                    section,
                    "-out",
                ],
                &cert,
            );
            (cert, PathBuf::from(key))
        };
        let (server_cert, server_key) = sign("server", "/CN=server", "server", "2");
        let client_subject = format!("/CN={client_name}");
        let (client_cert, client_key) = sign("client", &client_subject, "client", "3");
        Self {
            ca_cert,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

/// Writes a new 2048-bit OpenVPN static key (`openvpn --genkey secret`) to `path`.
pub fn generate_static_key(path: &Path) {
    let output = Command::new(resolve("openvpn"))
        .args(["--genkey", "secret"])
        .arg(path)
        .output()
        .expect("run openvpn --genkey");
    assert!(
        output.status.success(),
        "openvpn --genkey secret {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Generates an ECDSA P-256 key into `dir/<name>.key` and returns its path.
fn generate_key(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ],
        &key,
    );
    key.to_string_lossy().into_owned()
}

/// Runs `openssl args output` in `dir` and panics with its stderr if it fails.
fn openssl(dir: &Path, args: &[&str], output: &Path) {
    let result = Command::new(resolve("openssl"))
        .current_dir(dir)
        .args(args)
        .arg(output)
        .output()
        .expect("run openssl");
    assert!(
        result.status.success(),
        "openssl {} {} failed: {}",
        args.join(" "),
        output.display(),
        String::from_utf8_lossy(&result.stderr)
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Control-channel protection, with the static key file where one is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    None,
    /// `tls-auth` with `key-direction 0` on the server and 1 on the client.
    TlsAuth(PathBuf),
    TlsCrypt(PathBuf),
}

impl Protection {
    pub fn name(&self) -> &'static str {
        match self {
            Protection::None => "plain",
            Protection::TlsAuth(_) => "tls-auth",
            Protection::TlsCrypt(_) => "tls-crypt",
        }
    }

    fn args(&self, key_direction: &str) -> Vec<String> {
        match self {
            Protection::None => Vec::new(),
            Protection::TlsAuth(key) => vec![
                "--tls-auth".into(),
                key.to_string_lossy().into_owned(),
                key_direction.into(),
            ],
            Protection::TlsCrypt(key) => {
                vec!["--tls-crypt".into(), key.to_string_lossy().into_owned()]
            }
        }
    }
}

/// Command line of an OpenVPN 2.6 server with `server <pool>`, topology net30 and `dh none`,
/// listening on `listen`:[`PORT`].
pub fn server_args(
    pki: &Pki,
    transport: Transport,
    protection: &Protection,
    listen: Ipv4Addr,
    pool: Ipv4Net,
) -> Vec<String> {
    let proto = match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp-server",
    };
    let mut args: Vec<String> = [
        "--dev",
        "tun",
        "--topology",
        "net30",
        "--proto",
        proto,
        "--dh",
        "none",
        "--keepalive",
        "10",
        "60",
        "--verb",
        "3",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "--server".into(),
        pool.network().to_string(),
        pool.netmask().to_string(),
        "--local".into(),
        listen.to_string(),
        "--lport".into(),
        PORT.to_string(),
    ]);
    args.extend(pki_args(&pki.ca_cert, &pki.server_cert, &pki.server_key));
    args.extend(protection.args("0"));
    args
}

/// Command line of an OpenVPN 2.6 client of `remote`:[`PORT`]. Over UDP it announces its
/// exit (`explicit-exit-notify`) when it stops.
pub fn client_args(
    pki: &Pki,
    transport: Transport,
    protection: &Protection,
    remote: Ipv4Addr,
) -> Vec<String> {
    let proto = match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp-client",
    };
    let mut args: Vec<String> = [
        "--client",
        "--dev",
        "tun",
        "--proto",
        proto,
        "--nobind",
        "--remote-cert-tls",
        "server",
        "--connect-retry",
        "1",
        "--verb",
        "3",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--remote".into(), remote.to_string(), PORT.to_string()]);
    if transport == Transport::Udp {
        args.extend(["--explicit-exit-notify".into(), "1".into()]);
    }
    args.extend(pki_args(&pki.ca_cert, &pki.client_cert, &pki.client_key));
    args.extend(protection.args("1"));
    args
}

fn pki_args(ca: &Path, cert: &Path, key: &Path) -> Vec<String> {
    [("--ca", ca), ("--cert", cert), ("--key", key)]
        .into_iter()
        .flat_map(|(option, path)| [option.to_string(), path.to_string_lossy().into_owned()])
        .collect()
}
