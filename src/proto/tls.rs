//! TLS for the control channel: a rustls connection driven entirely from memory.
//!
//! OpenVPN carries TLS records inside its reliable control packets. This module feeds the
//! reassembled record bytes into rustls, collects the records rustls wants to send, and moves
//! plaintext (key method 2 messages, PUSH_REQUEST, ...) in and out.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};

/// Plaintext that may pile up on one side before the peer reads it. Control-channel messages
/// are short (a PUSH_REPLY is split at 1024 bytes), so a peer exceeding this misbehaves.
const MAX_PLAINTEXT_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS handshake or record failed: {0}")]
    Protocol(#[from] rustls::Error),
    #[error("peer sent more than {MAX_PLAINTEXT_BUFFER} bytes of unread control-channel data")]
    PlaintextOverflow,
    #[error("TLS configuration is invalid: {0}")]
    Config(String),
}

/// The identity a client proved with its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub common_name: String,
    /// Serial number as big-endian bytes, without leading zero bytes.
    pub serial: Vec<u8>,
}

impl PeerIdentity {
    /// Reads the subject common name and serial of a DER certificate.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_owned();
        let serial = certificate.raw_serial();
        let first_nonzero = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
        Some(Self {
            common_name,
            serial: serial[first_nonzero..].to_vec(),
        })
    }

    /// Returns the serial as uppercase hex, as `openssl x509 -serial` prints it.
    pub fn serial_hex(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02X}")).collect()
    }
}

/// One TLS session of the control channel.
pub struct Tls {
    connection: Connection,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshaking", &self.connection.is_handshaking())
            .finish()
    }
}

impl Tls {
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let connection = ServerConnection::new(config)?;
        Ok(Self {
            connection: connection.into(),
        })
    }

    pub fn client(config: Arc<ClientConfig>) -> Result<Self, TlsError> {
        // OpenVPN clients check the server's name only with `verify-x509-name`, so the name
        // below only fills the SNI field and the verifier ignores it.
        let name = ServerName::try_from("openvpn-server").expect("constant name is valid");
        let connection = ClientConnection::new(config, name)?;
        Ok(Self {
            connection: connection.into(),
        })
    }

    /// Feeds TLS record bytes received from the peer, in order.
    pub fn receive(&mut self, mut records: &[u8]) -> Result<(), TlsError> {
        while !records.is_empty() {
            self.connection
                .read_tls(&mut records)
                .map_err(|error| TlsError::Config(error.to_string()))?;
            let state = self.connection.process_new_packets()?;
            if state.plaintext_bytes_to_read() > MAX_PLAINTEXT_BUFFER {
                return Err(TlsError::PlaintextOverflow);
            }
        }
        Ok(())
    }

    /// Moves the plaintext received so far to the end of `out`.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) {
        let mut reader = self.connection.reader();
        // An error here means "no more data right now" (WouldBlock) or a closed connection;
        // either way what was read is kept.
        let _ = reader.read_to_end(out);
    }

    /// Queues plaintext for the peer; it is encrypted into records for [`Tls::write_records`].
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.connection
            .writer()
            .write_all(data)
            .map_err(|error| TlsError::Config(error.to_string()))
    }

    /// Appends the TLS records rustls wants to send to `out`.
    pub fn write_records(&mut self, out: &mut Vec<u8>) {
        while self.connection.wants_write() {
            if self.connection.write_tls(out).is_err() {
                break;
            }
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.connection.is_handshaking()
    }

    /// Returns the identity in the peer's certificate, once the handshake verified it.
    pub fn peer_identity(&self) -> Option<PeerIdentity> {
        let certificates = self.connection.peer_certificates()?;
        PeerIdentity::from_der(certificates.first()?)
    }

    /// Fills `out` from the TLS keying material exporter (RFC 5705) with `label` and no context.
    pub fn export_keying_material(&self, out: &mut [u8], label: &[u8]) -> Result<(), TlsError> {
        self.connection
            .export_keying_material(out, label, None)
            .map(|_| ())
            .map_err(TlsError::Protocol)
    }
}

/// Builds a server configuration that requires a client certificate issued by `ca` and not
/// listed in `crls`.
pub fn server_config(
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|error| TlsError::Config(format!("CA certificate: {error}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .build()
        .map_err(|error| TlsError::Config(format!("client verifier: {error}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // OpenVPN clients never resume a control-channel session, so tickets would be dead weight.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Builds a client configuration that trusts only `ca` and presents `chain` and `key`, as an
/// OpenVPN client with `ca`, `cert` and `key` does. Used by the client core in tests.
pub fn client_config(
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|error| TlsError::Config(format!("CA certificate: {error}")))?;
    let verifier = Arc::new(NoNameServerVerifier {
        inner: rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|error| TlsError::Config(format!("server verifier: {error}")))?,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Verifies the server's chain against the CA like webpki does, but accepts any name, because
/// OpenVPN clients identify the server by its CA (and `remote-cert-tls server`), not its name.
#[derive(Debug)]
struct NoNameServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for NoNameServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::test_pki::TestCa;

    /// Runs a handshake between two in-memory endpoints, returning the server's error if any.
    fn handshake(server: &mut Tls, client: &mut Tls) -> Result<(), TlsError> {
        for _ in 0..10 {
            let mut records = Vec::new();
            client.write_records(&mut records);
            server.receive(&records)?;
            records.clear();
            server.write_records(&mut records);
            // A client that the server rejected gets an alert; its error is not the subject.
            if client.receive(&records).is_err() {
                return Ok(());
            }
            if !server.is_handshaking() && !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish in 10 round trips");
    }

    fn endpoints(ca: &TestCa, client_ca: &TestCa, serial: u8, crl: &[u8]) -> (Tls, Tls) {
        let server_cert = ca.issue("office-server", true, 100);
        let client_cert = client_ca.issue("alice", false, serial);
        let server_config = server_config(
            ca.der.clone(),
            vec![server_cert.der],
            server_cert.key,
            vec![ca.crl(crl)],
        )
        .unwrap();
        let client_config =
            client_config(ca.der.clone(), vec![client_cert.der], client_cert.key).unwrap();
        (
            Tls::server(server_config).unwrap(),
            Tls::client(client_config).unwrap(),
        )
    }

    #[test]
    fn handshake_exposes_client_identity() {
        let ca = TestCa::new("office CA");
        let (mut server, mut client) = endpoints(&ca, &ca, 7, &[]);
        handshake(&mut server, &mut client).unwrap();
        let identity = server.peer_identity().unwrap();
        assert_eq!(identity.common_name, "alice");
        assert_eq!(identity.serial, vec![7]);
        assert_eq!(identity.serial_hex(), "07");
    }

    #[test]
    fn plaintext_crosses_both_ways() {
        let ca = TestCa::new("office CA");
        let (mut server, mut client) = endpoints(&ca, &ca, 7, &[]);
        handshake(&mut server, &mut client).unwrap();
        client.write_plaintext(b"PUSH_REQUEST\0").unwrap();
        let mut records = Vec::new();
        client.write_records(&mut records);
        server.receive(&records).unwrap();
        let mut plaintext = Vec::new();
        server.read_plaintext(&mut plaintext);
        assert_eq!(plaintext, b"PUSH_REQUEST\0");
    }

    #[test]
    fn exporter_matches_on_both_sides() {
        let ca = TestCa::new("office CA");
        let (mut server, mut client) = endpoints(&ca, &ca, 7, &[]);
        handshake(&mut server, &mut client).unwrap();
        let mut server_block = [0u8; 256];
        let mut client_block = [0u8; 256];
        let label = b"EXPORTER-OpenVPN-datakeys";
        server
            .export_keying_material(&mut server_block, label)
            .unwrap();
        client
            .export_keying_material(&mut client_block, label)
            .unwrap();
        assert_eq!(server_block, client_block);
        assert_ne!(server_block, [0u8; 256]);
    }

    #[test]
    fn revoked_client_is_rejected() {
        let ca = TestCa::new("office CA");
        let (mut server, mut client) = endpoints(&ca, &ca, 7, &[7]);
        let error = handshake(&mut server, &mut client).unwrap_err();
        assert!(error.to_string().contains("Revoked"), "{error}");
        assert!(server.peer_identity().is_none());
    }

    #[test]
    fn client_of_other_ca_is_rejected() {
        let ca = TestCa::new("office CA");
        let other = TestCa::new("lab CA");
        let (mut server, mut client) = endpoints(&ca, &other, 7, &[]);
        let error = handshake(&mut server, &mut client).unwrap_err();
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    }
}
