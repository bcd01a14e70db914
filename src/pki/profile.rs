//! Client profiles: the `.ovpn` file a user imports into OpenVPN 2.4 to 2.7 or Tunnelblick.
//!
//! The notes below come from OpenVPN's option parser (options.c of 2.4.12, 2.6.14 and 2.7.6);
//! the tests run the profiles through the installed `openvpn` binary.
//!
//! - `cipher <fallback>` is what OpenVPN 2.3, and 2.4 with `--ncp-disable`, use because they
//!   cannot negotiate a cipher. OpenVPN 2.5 and later print "DEPRECATED OPTION: --cipher set
//!   to ... but missing in --data-ciphers" unless the same cipher is also in `data-ciphers`,
//!   so it ends that list.
//! - `data-ciphers` lists the AEAD ciphers first, so 2.5+ clients settle on one of them. 2.4
//!   spells the option `ncp-ciphers`, which 2.5 to 2.7 accept with a note that it was
//!   renamed. 2.4 aborts on an option it does not know unless `ignore-unknown-option` names it
//!   first, and then only warns. The profile uses `data-ciphers` behind
//!   `ignore-unknown-option`, so 2.5+ read it without comment and 2.4 skips it and negotiates
//!   AES-256-GCM or AES-128-GCM with its built-in list.
//! - A CBC or `none` fallback in `data-ciphers` makes OpenVPN 2.6 print a note that it
//!   disables data channel offload (ovpn-dco), and so does the compression framing below. The
//!   client then runs its data channel in user space. Both fallbacks the configuration allows
//!   have this effect.
//! - With compression on, the server frames every data packet the `comp-lzo` way: a leading 0xFA
//!   byte (not compressed) or 0x66 (LZO). The profile contains `comp-lzo no`, which in 2.4 to 2.7
//!   selects exactly this framing with a stub compressor: the client sends 0xFA packets and never
//!   compresses. Every other spelling that enables LZO (`comp-lzo`, `comp-lzo yes`, `compress lzo`)
//!   makes 2.6 and 2.7 print a compression warning, and `allow-compression` is unknown to 2.4. The
//!   stub drops any 0x66 packet it receives, so a server talking to clients with this profile must
//!   send its packets uncompressed, with the 0xFA byte.
//! - `auth-nocache` goes with `auth-user-pass`: a one-time password is useless once sent,
//!   and without it OpenVPN 2.6 logs "WARNING: this configuration may cache passwords in
//!   memory" at the first handshake. A renegotiation then sends the `auth-token` that the
//!   server pushed, or asks the user again when the server pushed none.
//! - `<tls-crypt>` carries the server's static key inline, and a zip bundle names the file with
//!   `tls-crypt tls-crypt.key`. Both forms are accepted by OpenVPN 2.4 and later. tls-crypt needs
//!   no key direction, because both ends derive their directions from their role.
//! - `persist-key` makes OpenVPN 2.7 print "DEPRECATED OPTION: --persist-key option ignored"
//!   because 2.7 always keeps its keys; 2.4 to 2.6 need it to survive a restart without
//!   re-reading the key.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};

use time::OffsetDateTime;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::PkiError;
use super::clients::ClientCredentials;
use crate::config::{Cipher, Gateway, Protocol, SslServer};
use crate::proto::wrap::StaticKey;

/// AEAD data-channel ciphers offered to clients that negotiate, in order of preference.
pub const AEAD_CIPHERS: &[&str] = &["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"];

/// The file names inside a zip bundle.
pub const ZIP_PROFILE: &str = "config.ovpn";
pub const ZIP_CA: &str = "ca.crt";
pub const ZIP_CERT: &str = "client.crt";
pub const ZIP_KEY: &str = "client.key";
pub const ZIP_TLS_CRYPT_KEY: &str = "tls-crypt.key";

/// The settings of one SSL server that end up in its client profiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileSettings {
    pub server_name: String,
    /// Host name or address for the `remote` line.
    pub remote_host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub fallback_cipher: Cipher,
    pub compression: bool,
    pub two_factor: bool,
    /// The server's tls-crypt key, present when the server has `tls_crypt` on.
    pub tls_crypt_key: Option<StaticKey>,
}

impl ProfileSettings {
    /// Collects the profile settings of `server`. `tls_crypt_key` is the server's key when it
    /// has `tls_crypt` on.
    pub fn new(gateway: &Gateway, server: &SslServer, tls_crypt_key: Option<StaticKey>) -> Self {
        Self {
            server_name: server.name.clone(),
            remote_host: gateway.public_address.clone(),
            port: server.port,
            protocol: server.protocol,
            fallback_cipher: server.cipher,
            compression: server.compression,
            two_factor: server.two_factor,
            tls_crypt_key,
        }
    }

    /// Renders the profile with the CA, certificate and key inline.
    pub fn inline_profile(&self, credentials: &ClientCredentials) -> String {
        let mut text = self.directives(&credentials.entry.name);
        for (tag, pem) in [
            ("ca", &credentials.ca_pem),
            ("cert", &credentials.cert_pem),
            ("key", &credentials.key_pem),
        ] {
            let _ = writeln!(text, "<{tag}>\n{}\n</{tag}>", pem.trim_end());
        }
        if let Some(key) = &self.tls_crypt_key {
            let _ = writeln!(text, "<tls-crypt>\n{}</tls-crypt>", key.to_file_text());
        }
        text
    }

    /// Packs `config.ovpn` with `ca.crt`, `client.crt`, `client.key` and, with tls-crypt on,
    /// `tls-crypt.key`, which it refers to, into a zip archive. All files sit at the top level
    /// and are stored uncompressed.
    pub fn zip_bundle(&self, credentials: &ClientCredentials) -> Result<Vec<u8>, PkiError> {
        let mut profile = self.directives(&credentials.entry.name);
        let _ = writeln!(profile, "ca {ZIP_CA}\ncert {ZIP_CERT}\nkey {ZIP_KEY}");
        let tls_crypt_text = self.tls_crypt_key.as_ref().map(StaticKey::to_file_text);
        if tls_crypt_text.is_some() {
            let _ = writeln!(profile, "tls-crypt {ZIP_TLS_CRYPT_KEY}");
        }

        let stored = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(zip_time(OffsetDateTime::now_utc()));
        let public = stored.unix_permissions(0o644);
        let secret = stored.unix_permissions(0o600);
        let mut entries = vec![
            (ZIP_PROFILE, profile.as_str(), secret),
            (ZIP_CA, credentials.ca_pem.as_str(), public),
            (ZIP_CERT, credentials.cert_pem.as_str(), public),
            (ZIP_KEY, credentials.key_pem.as_str(), secret),
        ];
        if let Some(text) = &tls_crypt_text {
            entries.push((ZIP_TLS_CRYPT_KEY, text.as_str(), secret));
        }
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, contents, options) in entries {
            zip.start_file(name, options)?;
            zip.write_all(contents.as_bytes())
                .map_err(zip::result::ZipError::Io)?;
        }
        Ok(zip.finish()?.into_inner())
    }

    /// Renders the directives every profile shares, one per line, without key material.
    fn directives(&self, cert_name: &str) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# OpenVPN client profile of {cert_name:?} for SSL server {:?}",
            self.server_name
        );
        let proto = match self.protocol {
            Protocol::Tcp => "tcp-client",
            Protocol::Udp => "udp",
        };
        let fallback = self.fallback_cipher.name();
        let mut data_ciphers = AEAD_CIPHERS.join(":");
        data_ciphers.push(':');
        data_ciphers.push_str(fallback);

        let mut lines = vec![
            "client".to_owned(),
            "dev tun".to_owned(),
            format!("proto {proto}"),
            format!("remote {} {}", self.remote_host, self.port),
            "nobind".to_owned(),
            "persist-key".to_owned(),
            "persist-tun".to_owned(),
            "remote-cert-tls server".to_owned(),
            format!("cipher {fallback}"),
            "ignore-unknown-option data-ciphers".to_owned(),
            format!("data-ciphers {data_ciphers}"),
        ];
        if self.compression {
            lines.push("comp-lzo no".to_owned());
        }
        if self.two_factor {
            lines.push("auth-user-pass".to_owned());
            lines.push("auth-nocache".to_owned());
        }
        if self.protocol == Protocol::Udp {
            lines.push("explicit-exit-notify".to_owned());
        }
        lines.push("verb 3".to_owned());
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}

/// Converts `time` to a zip timestamp, or to 1980-01-01 (the zip epoch) if it does not fit.
fn zip_time(time: OffsetDateTime) -> zip::DateTime {
    let year = u16::try_from(time.year()).unwrap_or(1980);
    zip::DateTime::from_date_and_time(
        year,
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::super::index::{IndexEntry, RecordState};
    use super::super::serial::Serial;
    use super::*;

    fn settings(protocol: Protocol, compression: bool, two_factor: bool) -> ProfileSettings {
        ProfileSettings {
            server_name: "office".to_owned(),
            remote_host: "vpn.example.com".to_owned(),
            port: 1194,
            protocol,
            fallback_cipher: Cipher::Aes256Cbc,
            compression,
            two_factor,
            tls_crypt_key: None,
        }
    }

    fn tls_crypt_settings() -> ProfileSettings {
        ProfileSettings {
            tls_crypt_key: Some(StaticKey::from_bytes(
                [0xab; crate::proto::wrap::STATIC_KEY_LEN],
            )),
            ..settings(Protocol::Udp, false, false)
        }
    }

    fn credentials() -> ClientCredentials {
        let now = OffsetDateTime::UNIX_EPOCH;
        ClientCredentials {
            entry: IndexEntry {
                name: "alice".to_owned(),
                serial: Serial::from_bytes(&[0x41]),
                issued: now,
                expires: now,
                state: RecordState::Valid,
                revoked: None,
            },
            ca_pem: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".to_owned(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n".to_owned(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n".to_owned(),
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    /// Reads the archive entry `name` as UTF-8 text.
    fn entry_text(archive: &mut zip::ZipArchive<Cursor<Vec<u8>>>, name: &str) -> String {
        let mut text = String::new();
        archive
            .by_name(name)
            .unwrap_or_else(|error| panic!("entry {name} not found: {error}"))
            .read_to_string(&mut text)
            .unwrap_or_else(|error| panic!("reading entry {name}: {error}"));
        text
    }

    #[test]
    fn udp_profile_lines() {
        let text = settings(Protocol::Udp, false, false).inline_profile(&credentials());
        let lines = lines(&text);
        assert!(lines.contains(&"proto udp"));
        assert!(lines.contains(&"remote vpn.example.com 1194"));
        assert!(lines.contains(&"explicit-exit-notify"));
        assert!(lines.contains(&"cipher AES-256-CBC"));
        assert!(
            lines.contains(&"data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305:AES-256-CBC")
        );
        assert!(!lines.contains(&"comp-lzo no"));
        assert!(!lines.contains(&"auth-user-pass"));
        assert!(!lines.contains(&"auth-nocache"));
    }

    #[test]
    fn ignore_precedes_data_ciphers() {
        let text = settings(Protocol::Udp, false, false).inline_profile(&credentials());
        let ignore = text.find("ignore-unknown-option data-ciphers\n");
        let option = text.find("\ndata-ciphers ");
        assert!(ignore.is_some());
        assert!(option.is_some());
        assert!(ignore < option);
    }

    #[test]
    fn tcp_profile_lines() {
        let text = settings(Protocol::Tcp, true, true).inline_profile(&credentials());
        let lines = lines(&text);
        assert!(lines.contains(&"proto tcp-client"));
        assert!(lines.contains(&"comp-lzo no"));
        assert!(lines.contains(&"auth-user-pass"));
        assert!(lines.contains(&"auth-nocache"));
        assert!(!lines.contains(&"explicit-exit-notify"));
    }

    #[test]
    fn inline_blocks_present() {
        let text = settings(Protocol::Udp, false, false).inline_profile(&credentials());
        assert!(text.contains("<ca>\n-----BEGIN CERTIFICATE-----\nCA\n"));
        assert!(text.contains("-----END CERTIFICATE-----\n</cert>\n"));
        assert!(text.contains("<key>\n-----BEGIN PRIVATE KEY-----\nKEY\n"));
    }

    #[test]
    fn tls_crypt_block_present() {
        let text = tls_crypt_settings().inline_profile(&credentials());
        let start = text.find("<tls-crypt>\n").expect("opening tag");
        let end = text.find("</tls-crypt>\n").expect("closing tag");
        let key = StaticKey::parse(&text[start..end]).expect("key parses");
        assert_eq!(key.as_bytes(), &[0xab; crate::proto::wrap::STATIC_KEY_LEN]);
        assert!(text[start..end].contains("-----END OpenVPN Static key V1-----\n"));
    }

    #[test]
    fn tls_crypt_block_absent_when_off() {
        let text = settings(Protocol::Udp, false, false).inline_profile(&credentials());
        assert!(!text.contains("tls-crypt"));
    }

    #[test]
    fn zip_bundle_tls_crypt_entry() {
        let bytes = tls_crypt_settings()
            .zip_bundle(&credentials())
            .expect("zip");
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("readable zip");
        let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        assert_eq!(
            names,
            vec![ZIP_PROFILE, ZIP_CA, ZIP_CERT, ZIP_KEY, ZIP_TLS_CRYPT_KEY]
        );

        let profile = entry_text(&mut archive, ZIP_PROFILE);
        assert!(
            profile
                .lines()
                .any(|line| line == "tls-crypt tls-crypt.key")
        );
        assert!(!profile.contains("<tls-crypt>"));

        let key_mode = archive
            .by_name(ZIP_TLS_CRYPT_KEY)
            .expect("key entry")
            .unix_mode();
        assert_eq!(key_mode.map(|mode| mode & 0o777), Some(0o600));
        let key_text = entry_text(&mut archive, ZIP_TLS_CRYPT_KEY);
        assert!(StaticKey::parse(&key_text).is_ok());
    }

    #[test]
    fn zip_bundle_entries() {
        let bytes = settings(Protocol::Udp, false, false)
            .zip_bundle(&credentials())
            .expect("zip");
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("readable zip");
        let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        assert_eq!(names, vec![ZIP_PROFILE, ZIP_CA, ZIP_CERT, ZIP_KEY]);

        let profile = entry_text(&mut archive, ZIP_PROFILE);
        assert!(profile.lines().any(|line| line == "key client.key"));
        assert!(!profile.contains("<key>"));

        let key = archive.by_name(ZIP_KEY).expect("key entry");
        assert_eq!(key.unix_mode().map(|mode| mode & 0o777), Some(0o600));
    }
}
