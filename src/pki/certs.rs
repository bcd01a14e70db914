//! Certificate profiles of the CA, the server and the clients, and signing with the CA key.
//!
//! All keys are ECDSA P-256 and every certificate is signed with ecdsa-with-SHA256.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use super::PkiError;
use super::files;
use super::index::IndexEntry;
use super::serial::Serial;

/// Lifetime of a server's CA, and of its server certificate.
pub const CA_DAYS: u32 = 3650;
/// Default lifetime of a client certificate.
pub const DEFAULT_CLIENT_DAYS: u32 = 1095;
/// Maximum lifetime that `sslvpn cert create --days` accepts.
pub const MAX_CLIENT_DAYS: u32 = 3650;

/// How far notBefore lies before the issue time, so that a peer whose clock runs a little
/// behind does not reject a fresh certificate as not yet valid.
const BACKDATE: Duration = Duration::hours(1);

/// A freshly issued certificate with its private key, both in PEM.
pub struct Issued {
    pub serial: Serial,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

/// A server's CA, loaded to sign certificates and CRLs.
pub struct CaSigner {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

/// Returns the common name of a server's CA.
pub fn ca_common_name(server_name: &str) -> String {
    format!("{server_name} CA")
}

/// Returns the common name of a server's own certificate.
pub fn server_common_name(server_name: &str) -> String {
    format!("{server_name}-server")
}

/// Generates a self-signed CA for `server_name`: basicConstraints CA:TRUE (critical), key usage
/// keyCertSign and cRLSign, valid for [`CA_DAYS`].
pub fn new_ca(server_name: &str, now: OffsetDateTime) -> Result<(Issued, CaSigner), PkiError> {
    let key = generate_key("the CA key")?;
    let serial = Serial::random()?;
    let mut params = base_params(&ca_common_name(server_name), &serial, now, CA_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::generate("the CA certificate", source))?;
    let issued = Issued {
        serial,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after: params.not_after,
    };
    let signer = CaSigner {
        not_after: params.not_after,
        issuer: Issuer::new(params, key),
    };
    Ok((issued, signer))
}

/// Issues the certificate the SSL server presents.
///
/// OpenVPN 2.4 to 2.7 clients with `remote-cert-tls server` demand the extended key usage
/// serverAuth ("TLS Web Server Authentication") and a key usage extension with any value (options.c
/// and ssl_verify_openssl.c). They leave the key usage bits to OpenSSL, whose sslserver purpose
/// (v3_purp.c) needs digitalSignature, keyEncipherment or keyAgreement. An ECDSA server key signs
/// the handshake, which is digitalSignature. keyAgreement is added for OpenVPN 2.3, which accepts
/// only the bits 0xA0 (digitalSignature with keyEncipherment) or 0x88 (digitalSignature with
/// keyAgreement), and keyEncipherment does not apply to an EC key.
pub fn new_server_cert(
    server_name: &str,
    ca: &CaSigner,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let key = generate_key("the server key")?;
    let serial = Serial::random()?;
    let mut params = base_params(&server_common_name(server_name), &serial, now, CA_DAYS);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    ca.sign(params, key, serial, "the server certificate")
}

/// Issues a client certificate with common name `name`: extended key usage clientAuth, which
/// webpki (rustls) and OpenVPN's `remote-cert-tls client` require, and key usage
/// digitalSignature, which a TLS client key needs to sign the handshake.
pub fn new_client_cert(
    name: &str,
    serial: Serial,
    days: u32,
    ca: &CaSigner,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let key = generate_key("the client key")?;
    let mut params = base_params(name, &serial, now, days);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    ca.sign(params, key, serial, "the client certificate")
}

impl CaSigner {
    /// Loads the CA certificate and key from their PEM files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert = read_cert(cert_path)?;
        let key_text = read_private_text(key_path)?;
        let key = KeyPair::from_pem(&key_text).map_err(|error| PkiError::Corrupt {
            path: key_path.to_owned(),
            reason: error.to_string(),
        })?;
        let corrupt_cert = |reason: String| PkiError::Corrupt {
            path: cert_path.to_owned(),
            reason,
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|error| corrupt_cert(error.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(corrupt_cert(format!(
                "its public key does not match the private key in {}",
                key_path.display()
            )));
        }
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|error| corrupt_cert(error.to_string()))?;
        Ok(Self { issuer, not_after })
    }

    /// Signs a CRL that lists every revoked entry of `revoked`.
    ///
    /// The CRL is re-signed only when a certificate is revoked, and OpenSSL's `-crl_check`
    /// and OpenVPN's `crl-verify` reject a CRL past its nextUpdate. So nextUpdate is the CA's
    /// own notAfter: the CRL stays usable for as long as the CA can vouch for anything.
    pub fn sign_crl<'a>(
        &self,
        revoked: impl Iterator<Item = &'a IndexEntry>,
        number: u64,
        now: OffsetDateTime,
    ) -> Result<rcgen::CertificateRevocationList, PkiError> {
        let this_update = whole_seconds(now);
        let next_update = self.not_after.max(this_update + Duration::days(1));
        let revoked_certs = revoked
            .map(|entry| RevokedCertParams {
                serial_number: SerialNumber::from_slice(entry.serial.as_bytes()),
                revocation_time: entry.revoked.unwrap_or(this_update),
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .map_err(|source| PkiError::generate("the CRL", source))
    }

    fn sign(
        &self,
        params: CertificateParams,
        key: KeyPair,
        serial: Serial,
        item: &str,
    ) -> Result<Issued, PkiError> {
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| PkiError::generate(item, source))?;
        Ok(Issued {
            serial,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: params.not_after,
        })
    }
}

/// Reads the first certificate of a PEM file.
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let bytes = files::read(path)?;
    CertificateDer::from_pem_slice(&bytes).map_err(|error| PkiError::Corrupt {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

pub fn read_text(path: &Path) -> Result<String, PkiError> {
    utf8_text(path, files::read(path)?)
}

/// Reads a PEM private key with [`files::read_private`], which warns when the file is not
/// private to its owner.
pub fn read_private_text(path: &Path) -> Result<String, PkiError> {
    utf8_text(path, files::read_private(path)?)
}

fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String, PkiError> {
    String::from_utf8(bytes).map_err(|_| PkiError::Corrupt {
        path: path.to_owned(),
        reason: "not UTF-8 text".to_owned(),
    })
}

/// Drops the sub-second part, which X.509 times cannot carry, so that the dates in the index
/// equal the dates in the certificates.
pub fn whole_seconds(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(0).unwrap_or(time)
}

fn base_params(
    common_name: &str,
    serial: &Serial,
    now: OffsetDateTime,
    days: u32,
) -> CertificateParams {
    let now = whole_seconds(now);
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(days));
    params.use_authority_key_identifier_extension = true;
    params
}

fn generate_key(item: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| PkiError::generate(item, source))
}

#[cfg(test)]
mod tests {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::*;

    use super::*;

    fn now() -> OffsetDateTime {
        whole_seconds(OffsetDateTime::now_utc())
    }

    fn der_of(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    #[test]
    fn ca_extensions() {
        let (ca, _) = new_ca("office", now()).expect("CA");
        let der = der_of(&ca.cert_pem);
        let (_, cert) = parse_x509_certificate(&der).expect("parses");
        let constraints = cert
            .basic_constraints()
            .expect("one extension")
            .expect("present");
        assert!(constraints.critical);
        assert!(constraints.value.ca);
        let usage = cert.key_usage().expect("one extension").expect("present");
        assert!(usage.value.key_cert_sign());
        assert!(usage.value.crl_sign());
        let validity = cert.validity();
        let lifetime = validity.not_after.to_datetime() - validity.not_before.to_datetime();
        assert_eq!(lifetime, Duration::days(3650) + BACKDATE);
        assert_eq!(cert.subject().to_string(), "CN=office CA");
    }

    #[test]
    fn server_cert_extensions() {
        let (_, signer) = new_ca("office", now()).expect("CA");
        let server = new_server_cert("office", &signer, now()).expect("server cert");
        let der = der_of(&server.cert_pem);
        let (_, cert) = parse_x509_certificate(&der).expect("parses");
        let usage = cert.key_usage().expect("one extension").expect("present");
        assert!(usage.value.digital_signature());
        assert!(usage.value.key_agreement());
        assert!(!usage.value.key_cert_sign());
        let eku = cert
            .extended_key_usage()
            .expect("one extension")
            .expect("present");
        assert!(eku.value.server_auth);
        assert!(!eku.value.client_auth);
        assert_eq!(cert.subject().to_string(), "CN=office-server");
        assert_eq!(cert.issuer().to_string(), "CN=office CA");
    }

    #[test]
    fn client_cert_extensions() {
        let (_, signer) = new_ca("office", now()).expect("CA");
        let serial = Serial::random().expect("serial");
        let client = new_client_cert("alice", serial.clone(), 30, &signer, now()).expect("cert");
        let der = der_of(&client.cert_pem);
        let (_, cert) = parse_x509_certificate(&der).expect("parses");
        let eku = cert
            .extended_key_usage()
            .expect("one extension")
            .expect("present");
        assert!(eku.value.client_auth);
        assert!(!eku.value.server_auth);
        let usage = cert.key_usage().expect("one extension").expect("present");
        assert!(usage.value.digital_signature());
        assert_eq!(Serial::from_bytes(cert.raw_serial()), serial);
        assert_eq!(cert.subject().to_string(), "CN=alice");
        assert_eq!(
            cert.validity().not_after.to_datetime(),
            client.not_after,
            "index date and certificate date differ"
        );
        let has_aki = cert.extensions().iter().any(|ext| {
            matches!(
                ext.parsed_extension(),
                ParsedExtension::AuthorityKeyIdentifier(_)
            )
        });
        assert!(has_aki);
    }

    #[test]
    fn crl_lists_revoked_serials() {
        let (_, signer) = new_ca("office", now()).expect("CA");
        let entry = IndexEntry {
            name: "alice".to_owned(),
            serial: Serial::from_bytes(&[0x41, 0x02]),
            issued: now(),
            expires: now() + Duration::days(1),
            state: super::super::index::RecordState::Revoked,
            revoked: Some(now()),
        };
        let signed = signer
            .sign_crl(std::iter::once(&entry), 7, now())
            .expect("CRL");
        let (_, crl) = parse_x509_crl(signed.der().as_ref()).expect("parses");
        let serials: Vec<Serial> = crl
            .iter_revoked_certificates()
            .map(|revoked| Serial::from_bytes(revoked.raw_serial()))
            .collect();
        assert_eq!(serials, vec![entry.serial.clone()]);
        let number = crl.crl_number().expect("CRL number");
        assert_eq!(number.to_u64_digits(), vec![7]);
        let next_update = crl.next_update().expect("nextUpdate").to_datetime();
        assert!(next_update > now() + Duration::days(3000));
    }
}
