//! The CRL file (`crl.pem`): reading it, noticing when it changes, and replacing it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use super::PkiError;
use super::files::{self, PUBLIC_MODE};
use super::serial::Serial;

/// A parsed CRL together with the identity of the file it came from.
#[derive(Clone, Debug)]
pub struct LoadedCrl {
    pub der: CertificateRevocationListDer<'static>,
    pub revoked: HashSet<Serial>,
    /// The cRLNumber extension, 0 when absent.
    pub number: u64,
    pub stamp: FileStamp,
}

/// Identity of one version of a file. An atomic replace gives the file a new inode, and an
/// in-place edit changes its size or modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
}

/// Reads the stamp of `path` without reading the file.
pub fn stamp(path: &Path) -> Result<FileStamp, PkiError> {
    let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => PkiError::MissingFile {
            path: path.to_owned(),
        },
        _ => PkiError::io("read metadata of", path, source),
    })?;
    Ok(FileStamp {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: metadata.size(),
        modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
            + i128::from(metadata.mtime_nsec()),
    })
}

/// Reads and parses the PEM CRL at `path`.
pub fn load(path: &Path) -> Result<LoadedCrl, PkiError> {
    // The stamp is taken first: if the file is replaced between the two reads, the next
    // change check finds a stamp that differs from the recorded one and reads it again.
    let stamp = stamp(path)?;
    let bytes = files::read(path)?;
    let corrupt = |reason: String| PkiError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let der = CertificateRevocationListDer::from_pem_slice(&bytes)
        .map_err(|error| corrupt(error.to_string()))?;
    let (revoked, number) = parse(&der).map_err(corrupt)?;
    Ok(LoadedCrl {
        der,
        revoked,
        number,
        stamp,
    })
}

/// Replaces the CRL file with `pem`, atomically.
pub fn save(path: &Path, pem: &str) -> Result<(), PkiError> {
    files::write_atomic(path, pem.as_bytes(), PUBLIC_MODE)
}

fn parse(der: &[u8]) -> Result<(HashSet<Serial>, u64), String> {
    let (rest, crl) = x509_parser::parse_x509_crl(der).map_err(|error| error.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the CRL", rest.len()));
    }
    let revoked = crl
        .iter_revoked_certificates()
        .map(|entry| Serial::from_bytes(entry.raw_serial()))
        .collect();
    let number = match crl.crl_number() {
        None => 0,
        Some(number) => {
            let digits = number.to_u64_digits();
            match digits.as_slice() {
                [] => 0,
                [value] => *value,
                _ => return Err(format!("CRL number {number} does not fit in 64 bits")),
            }
        }
    };
    Ok((revoked, number))
}

/// Checks that the CRL at `path` was issued by the CA `ca`: a CRL copied from another SSL
/// server would otherwise make every client's revocation status unknown, so all of them would
/// be rejected.
pub fn check_issuer(crl: &LoadedCrl, ca: &[u8], path: &Path) -> Result<(), PkiError> {
    let corrupt = |reason: String| PkiError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let (_, ca) = x509_parser::parse_x509_certificate(ca)
        .map_err(|error| corrupt(format!("CA certificate: {error}")))?;
    let (_, list) = x509_parser::parse_x509_crl(crl.der.as_ref())
        .map_err(|error| corrupt(error.to_string()))?;
    if list.issuer().as_raw() != ca.subject().as_raw() {
        return Err(corrupt(format!(
            "issued by \"{}\", not by this server's CA \"{}\"; restore this server's own crl.pem",
            list.issuer(),
            ca.subject()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_changes_on_replace() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("crl.pem");
        files::write_atomic(&path, b"one", PUBLIC_MODE).expect("write");
        let first = stamp(&path).expect("stamp");
        assert_eq!(stamp(&path).expect("stamp"), first);
        files::write_atomic(&path, b"one", PUBLIC_MODE).expect("rewrite");
        assert_ne!(stamp(&path).expect("stamp"), first);
    }

    #[test]
    fn garbage_crl_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("crl.pem");
        std::fs::write(
            &path,
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )
        .expect("write");
        let result = load(&path);
        assert!(
            matches!(result, Err(PkiError::Corrupt { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn missing_crl_named() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("crl.pem");
        let result = load(&path);
        assert!(
            matches!(result, Err(PkiError::MissingFile { .. })),
            "{result:?}"
        );
    }
}
