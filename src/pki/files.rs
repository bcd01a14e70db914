//! Crash-safe file writes and the lock that serializes changes to a server's PKI folder.
//!
//! Every file is written to a temporary file in the same folder and flushed with fsync. The
//! temporary file is then renamed over the final name and the folder is fsynced. So after a crash a
//! reader finds either the old file or the complete new one. A crash can leave a stray
//! `.<name>.tmp-*` file behind, which readers ignore.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::PkiError;

/// Mode of private keys and of exported profiles, which hold a private key.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of certificates, the index and the CRL.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of the folders this module creates.
pub const DIR_MODE: u32 = 0o700;

/// Replaces `path` with `contents` so that a reader never sees a partly written file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    write_atomic_with(path, mode, |file| file.write_all(contents))
}

/// Replaces `path` with what `fill` writes into a fresh temporary file. If `fill` fails, the
/// temporary file is removed and `path` keeps its previous contents.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), PkiError> {
    let folder = parent(path);
    let temp = temp_path(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(|source| PkiError::io("create", &temp, source))?;
    let written = fill(&mut file).and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(PkiError::io("write", &temp, source));
    }
    #[cfg(test)]
    if crash_point::take(path) {
        return Err(PkiError::io(
            "rename into place",
            path,
            io::Error::other("simulated crash before the rename"),
        ));
    }
    if let Err(source) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(PkiError::io("rename into place", path, source));
    }
    sync_dir(folder)
}

/// Writes a new file at `path`, failing if anything already exists there. A failed write
/// removes what it created.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => PkiError::OutputExists {
                path: path.to_owned(),
            },
            _ => PkiError::io("create", path, source),
        })?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written {
        let _ = fs::remove_file(path);
        return Err(PkiError::io("write", path, source));
    }
    sync_dir(parent(path))
}

/// Flushes a folder's entries, which makes a rename or a new file in it durable.
pub fn sync_dir(folder: &Path) -> Result<(), PkiError> {
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| PkiError::io("sync folder", folder, source))
}

/// Creates `folder` and any missing parents with mode 0700.
pub fn create_dir_all(folder: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(folder)
        .map_err(|source| PkiError::io("create folder", folder, source))
}

pub fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|source| read_error(path, source))
}

/// Reads a private key file. When group or others have any access to it, logs a warning
/// with the fix and still returns the contents, as OpenVPN 2.6 does for its key files.
pub fn read_private(path: &Path) -> Result<Vec<u8>, PkiError> {
    let mut file = File::open(path).map_err(|source| read_error(path, source))?;
    let metadata = file
        .metadata()
        .map_err(|source| PkiError::io("read", path, source))?;
    warn_if_exposed(path, metadata.permissions().mode() & 0o7777);
    let mut contents = Vec::new();
    file.read_to_end(&mut contents)
        .map_err(|source| PkiError::io("read", path, source))?;
    Ok(contents)
}

fn read_error(path: &Path, source: io::Error) -> PkiError {
    match source.kind() {
        io::ErrorKind::NotFound => PkiError::MissingFile {
            path: path.to_owned(),
        },
        _ => PkiError::io("read", path, source),
    }
}

/// Returns whether a file mode gives group or others any access.
pub fn is_exposed(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Logs a warning with the fix when `mode` exposes the private key file `path`, unless one
/// was already logged for this file and mode.
fn warn_if_exposed(path: &Path, mode: u32) {
    if !is_exposed(mode) {
        forget_exposed(path);
        return;
    }
    if record_exposed(path, mode) {
        tracing::warn!(
            "private key file {} is accessible to group or others (mode {mode:04o}); \
             it is used anyway, run `chmod 600 {}` to make it private",
            path.display(),
            path.display(),
        );
    }
}

/// The mode each exposed private key file had when its warning was logged. The daemon reads
/// the server key again on every CRL change, so one file is reported once per mode.
static EXPOSED: Mutex<BTreeMap<PathBuf, u32>> = Mutex::new(BTreeMap::new());

/// Records that `path` has the exposed `mode` and returns whether that is news, so a warning
/// is due.
fn record_exposed(path: &Path, mode: u32) -> bool {
    let mut exposed = EXPOSED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    exposed.insert(path.to_owned(), mode) != Some(mode)
}

/// Forgets the warning about `path` after its mode was fixed, so a later exposure is logged
/// again.
fn forget_exposed(path: &Path) {
    let mut exposed = EXPOSED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    exposed.remove(path);
}

/// An exclusive `flock` on a lock file, held until the value is dropped.
///
/// Two `sslvpn cert` runs against the same server take turns through this lock, so neither
/// loses the other's index entry. flock locks belong to an open file description, so two
/// threads of one process that each acquire the lock also exclude each other.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Waits until the lock is free, then takes it.
    pub fn acquire(path: &Path) -> Result<Self, PkiError> {
        let file = open_lock_file(path)?;
        loop {
            match flock(&file, libc::LOCK_EX) {
                Ok(()) => return Ok(Self { _file: file }),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(PkiError::io("lock", path, error)),
            }
        }
    }

    /// Takes the lock without waiting; `Ok(None)` when another holder has it.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, PkiError> {
        let file = open_lock_file(path)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(error) => Err(PkiError::io("lock", path, error)),
        }
    }
}

/// Opens or creates a lock file, readable by its owner only.
fn open_lock_file(path: &Path) -> Result<File, PkiError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SECRET_MODE)
        .open(path)
        .map_err(|source| PkiError::io("open lock file", path, source))
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock takes a file descriptor and a flag and touches no memory of ours; the
    // descriptor stays open because `file` outlives the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    }
}

/// Picks a unique name beside `path`: `.<file name>.tmp-<pid>-<random hex>`.
fn temp_path(path: &Path) -> Result<PathBuf, PkiError> {
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| PkiError::Random)?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp_name = format!(".{name}.tmp-{}-{suffix}", std::process::id());
    Ok(parent(path).join(temp_name))
}

/// A test switch that makes the next atomic write of one file stop after its temporary file
/// is complete and before the rename, leaving what a crash at that moment leaves.
#[cfg(test)]
pub mod crash_point {
    use std::cell::RefCell;
    use std::path::Path;

    thread_local! {
        static FILE_NAME: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Arms the switch for the next write of a file named `file_name` on this thread.
    pub fn arm(file_name: &str) {
        FILE_NAME.with(|armed| *armed.borrow_mut() = Some(file_name.to_owned()));
    }

    /// Whether a write of `path` should stop now; disarms the switch when it fires.
    pub(super) fn take(path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        FILE_NAME.with(|armed| {
            let mut armed = armed.borrow_mut();
            if armed.is_some() && *armed == name {
                *armed = None;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn atomic_write_replaces() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("index.json");
        write_atomic(&path, b"first", PUBLIC_MODE).expect("first write");
        write_atomic(&path, b"second", PUBLIC_MODE).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"second");
    }

    #[test]
    fn atomic_write_sets_secret_mode() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("ca.key");
        write_atomic(&path, b"key", SECRET_MODE).expect("write");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn failed_fill_keeps_old_file() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("crl.pem");
        write_atomic(&path, b"old contents", PUBLIC_MODE).expect("first write");

        let result = write_atomic_with(&path, PUBLIC_MODE, |file| {
            file.write_all(b"half of the new")?;
            Err(io::Error::other("simulated crash before rename"))
        });

        assert!(result.is_err());
        assert_eq!(fs::read(&path).expect("read"), b"old contents");
        let names: Vec<_> = fs::read_dir(folder.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("crl.pem")]);
    }

    #[test]
    fn write_new_refuses_existing() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("alice.ovpn");
        write_new(&path, b"profile", SECRET_MODE).expect("first write");
        let second = write_new(&path, b"other", SECRET_MODE);
        assert!(matches!(second, Err(PkiError::OutputExists { .. })));
        assert_eq!(fs::read(&path).expect("read"), b"profile");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn exposed_modes_detected() {
        for mode in [
            0o640, 0o644, 0o604, 0o660, 0o602, 0o610, 0o601, 0o666, 0o4640,
        ] {
            assert!(is_exposed(mode), "mode {mode:04o} counted as private");
        }
    }

    #[test]
    fn private_modes_accepted() {
        for mode in [0o600, 0o400, 0o700, 0o200, 0o000, 0o4600] {
            assert!(!is_exposed(mode), "mode {mode:04o} counted as exposed");
        }
    }

    #[test]
    fn exposed_file_recorded_once_per_mode() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("server.key");
        assert!(record_exposed(&path, 0o644), "first exposure");
        assert!(!record_exposed(&path, 0o644), "same mode again");
        assert!(record_exposed(&path, 0o640), "another exposed mode");
        forget_exposed(&path);
        assert!(record_exposed(&path, 0o640), "exposed again after a fix");
    }

    #[test]
    fn exposed_key_still_read() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("ca.key");
        fs::write(&path, b"key").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(read_private(&path).expect("read"), b"key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_private(&path).expect("read"), b"key");
        let exposed = EXPOSED.lock().expect("lock");
        assert!(
            !exposed.contains_key(&path),
            "a fixed file is still recorded"
        );
    }

    #[test]
    fn missing_private_key_named() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("server.key");
        let error = read_private(&path).unwrap_err();
        assert!(matches!(error, PkiError::MissingFile { .. }), "{error}");
    }

    #[test]
    fn lock_excludes_second_holder() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join(".lock");
        let first = DirLock::acquire(&path).expect("first lock");
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter_path = path.clone();
        let waiter = std::thread::spawn(move || {
            let _second = DirLock::acquire(&waiter_path).expect("second lock");
            sender.send(()).expect("send");
        });
        let early = receiver.recv_timeout(std::time::Duration::from_millis(200));
        assert!(
            early.is_err(),
            "second holder got the lock while the first held it"
        );
        drop(first);
        let late = receiver.recv_timeout(std::time::Duration::from_secs(5));
        assert!(late.is_ok(), "second holder never got the lock");
        waiter.join().expect("join");
    }
}
