//! Creating a server's PKI folder.
//!
//! Every file is written into a staging folder `pki_dir/.<server>.new-<random>`, which is then
//! renamed to `pki_dir/<server>`. A crash leaves at most a stray staging folder, never a
//! half-filled PKI. When two processes create the same PKI at once, the first rename wins and
//! the other process discards its staging folder and uses the winner's files.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use time::OffsetDateTime;

use super::certs::{self, Issued};
use super::files::{self, DIR_MODE, PUBLIC_MODE, SECRET_MODE};
use super::layout::ServerDir;
use super::{PkiError, crl, index};

/// Number of the first CRL; later ones count up from it.
pub const FIRST_CRL_NUMBER: u64 = 1;

pub fn create(
    pki_dir: &Path,
    dir: &ServerDir,
    server_name: &str,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    files::create_dir_all(pki_dir)?;
    let staging_path = pki_dir.join(format!(".{server_name}.new-{}", random_hex()?));
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(&staging_path)
        .map_err(|source| PkiError::io("create folder", &staging_path, source))?;
    let staging = ServerDir::at(staging_path.clone());

    if let Err(error) = populate(&staging, server_name, now) {
        let _ = fs::remove_dir_all(&staging_path);
        return Err(error);
    }
    match fs::rename(&staging_path, dir.root()) {
        Ok(()) => {
            files::sync_dir(pki_dir)?;
            tracing::info!(
                server = server_name,
                dir = %dir.root().display(),
                "created the CA, server certificate and CRL of the SSL server"
            );
            Ok(())
        }
        Err(error) if is_taken(&error) => {
            let _ = fs::remove_dir_all(&staging_path);
            tracing::debug!(
                server = server_name,
                "another process created the PKI first; using its files"
            );
            Ok(())
        }
        Err(source) => {
            let _ = fs::remove_dir_all(&staging_path);
            Err(PkiError::io("rename into place", dir.root(), source))
        }
    }
}

/// Writes a complete PKI into `dir`: CA, server certificate, empty index, empty CRL and the
/// folder for client certificates.
fn populate(dir: &ServerDir, server_name: &str, now: OffsetDateTime) -> Result<(), PkiError> {
    let (ca, signer) = certs::new_ca(server_name, now)?;
    write_pair(&ca, &dir.ca_cert(), &dir.ca_key())?;
    let server = certs::new_server_cert(server_name, &signer, now)?;
    write_pair(&server, &dir.server_cert(), &dir.server_key())?;

    index::write_empty(&dir.index())?;
    let empty_crl = signer.sign_crl(std::iter::empty(), FIRST_CRL_NUMBER, now)?;
    let pem = empty_crl
        .pem()
        .map_err(|source| PkiError::generate("the CRL", source))?;
    crl::save(&dir.crl(), &pem)?;

    let clients = dir.clients();
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(&clients)
        .map_err(|source| PkiError::io("create folder", &clients, source))?;
    files::sync_dir(dir.root())
}

/// Writes the private key first, so that a certificate file never exists without its key.
pub fn write_pair(issued: &Issued, cert_path: &Path, key_path: &Path) -> Result<(), PkiError> {
    files::write_atomic(key_path, issued.key_pem.as_bytes(), SECRET_MODE)?;
    files::write_atomic(cert_path, issued.cert_pem.as_bytes(), PUBLIC_MODE)
}

/// Returns whether a rename failed because the target folder exists and is not empty.
fn is_taken(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
    )
}

fn random_hex() -> Result<String, PkiError> {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
