//! Sticky tunnel addresses across restarts: the common name -> address entries that each SSL
//! server's pool remembers, kept in memory while the server restarts and in
//! `pki_dir/<name>/ipp.txt` while the daemon restarts.
//!
//! The file follows OpenVPN 2.6's `ifconfig-pool-persist` file (pool.c): one
//! `common name,address` line per client, and lines starting with `#` or `;` are comments.
//! It differs in two ways. A net30 line names the client's address, where OpenVPN names the
//! first address of the client's /30 block. A third field, OpenVPN's IPv6 address, is ignored.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::config::SslServer;
use crate::pki::{self, MAX_CERT_NAME_LENGTH, PkiError, ServerDir, validate_cert_name};

use super::addresses::{SharedPool, new_pool};
use super::pool::StickyEntry;

/// How often the gateway writes the file of each server whose entries changed.
pub(super) const SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// Malformed lines of one file that get a warning each. The rest share one warning.
const MAX_LINE_WARNINGS: usize = 5;

/// The sticky addresses of every SSL server, running or stopped.
#[derive(Default)]
pub(super) struct StickyAddresses {
    running: HashMap<String, Running>,
    /// Entries of stopped servers, by server name, for their next start.
    stopped: HashMap<String, Stopped>,
}

struct Running {
    pool: SharedPool,
    /// None when the server name cannot name a folder, which the config rules prevent.
    file: Option<PathBuf>,
    /// The pool's sticky revision that the file contains.
    saved_revision: Option<u64>,
    /// Whether the last write failed, so a repeated failure is not logged as a warning again.
    save_failed: bool,
}

struct Stopped {
    entries: Vec<StickyEntry>,
    /// Whether the file contains these entries.
    saved: bool,
    /// Whether the entries were read from the file, because the server has not run since
    /// the daemon started.
    from_file: bool,
}

impl StickyAddresses {
    /// Creates the address pool of `server`, restoring the entries it had when it stopped.
    /// A server that has not run since the daemon started gets the entries of its file, kept
    /// until the server starts, so a start retry does not read the file and log its
    /// malformed lines again.
    pub(super) fn open_pool(&mut self, pki_dir: &Path, server: &SslServer) -> SharedPool {
        let mut pool = new_pool(server);
        let stopped = self.stopped.entry(server.name.clone()).or_insert_with(|| {
            let entries = file_path(pki_dir, &server.name)
                .map(|path| read_file(&path))
                .unwrap_or_default();
            Stopped {
                entries,
                saved: true,
                from_file: true,
            }
        });
        let entries = stopped.entries.clone();
        let source = if stopped.from_file {
            "file"
        } else {
            "last run"
        };
        if !entries.is_empty() {
            let restored = pool.restore_sticky(&entries);
            info!(
                server = %server.name,
                restored,
                dropped = entries.len() - restored,
                source,
                "restored the tunnel addresses of known clients"
            );
        }
        SharedPool::new(pool)
    }

    /// Records the pool of a server that started, so its entries are saved from now on.
    pub(super) fn started(&mut self, pki_dir: &Path, server: &str, pool: SharedPool) {
        let revision = pool.lock().sticky_revision();
        // Entries that a failed write left out of the file are written at the next save.
        let saved = self
            .stopped
            .remove(server)
            .is_none_or(|stopped| stopped.saved);
        let running = Running {
            pool,
            file: file_path(pki_dir, server),
            saved_revision: saved.then_some(revision),
            save_failed: false,
        };
        self.running.insert(server.to_owned(), running);
    }

    /// Keeps the entries of a server that stopped for its next start and writes its file.
    pub(super) fn stopped(&mut self, server: &str) {
        let Some(mut running) = self.running.remove(server) else {
            return;
        };
        let entries = running.pool.lock().sticky_entries();
        let saved = running.save(server, &entries);
        let stopped = Stopped {
            entries,
            saved,
            from_file: false,
        };
        self.stopped.insert(server.to_owned(), stopped);
    }

    /// Drops the entries of a deleted server. Its file goes with its PKI folder.
    pub(super) fn forget(&mut self, server: &str) {
        self.running.remove(server);
        self.stopped.remove(server);
    }

    /// Writes the file of every running server whose entries changed since the last write.
    pub(super) fn save_changed(&mut self) {
        for (server, running) in &mut self.running {
            let (revision, entries) = {
                let pool = running.pool.lock();
                let revision = pool.sticky_revision();
                if running.saved_revision == Some(revision) {
                    continue;
                }
                (revision, pool.sticky_entries())
            };
            if running.save(server, &entries) {
                running.saved_revision = Some(revision);
            }
        }
    }
}

impl Running {
    /// Writes `entries` to the file and returns whether that worked. Logs a failure as a
    /// warning once, until a write works again.
    fn save(&mut self, server: &str, entries: &[StickyEntry]) -> bool {
        let Some(path) = &self.file else {
            return false;
        };
        match write_file(path, server, entries) {
            Ok(()) => {
                if self.save_failed {
                    info!(server, file = %path.display(), "sticky address file written again");
                }
                self.save_failed = false;
                true
            }
            Err(error) => {
                if self.save_failed {
                    debug!(server, %error, "writing the sticky address file failed again");
                } else {
                    warn!(
                        server,
                        %error,
                        "writing the sticky address file failed; it is retried every {} s \
                         while the server runs, and clients keep their addresses until \
                         sslvpn serve restarts",
                        SAVE_INTERVAL.as_secs()
                    );
                }
                self.save_failed = true;
                false
            }
        }
    }
}

fn file_path(pki_dir: &Path, server: &str) -> Option<PathBuf> {
    ServerDir::new(pki_dir, server)
        .ok()
        .map(|dir| dir.sticky_addresses())
}

/// Reads the entries of a file. A missing or unreadable file has none, and each malformed
/// line is skipped with a warning.
fn read_file(path: &Path) -> Vec<StickyEntry> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            warn!(
                file = %path.display(),
                %error,
                "reading the sticky address file failed, so clients may get new tunnel \
                 addresses"
            );
            return Vec::new();
        }
    };
    let Parsed {
        entries,
        malformed,
        invalid_names,
    } = parse(&bytes);
    for line in malformed.iter().take(MAX_LINE_WARNINGS) {
        warn!(
            file = %path.display(),
            line = line.number,
            reason = line.reason,
            "skipped a malformed line of the sticky address file"
        );
    }
    if malformed.len() > MAX_LINE_WARNINGS {
        warn!(
            file = %path.display(),
            lines = malformed.len() - MAX_LINE_WARNINGS,
            "skipped more malformed lines of the sticky address file"
        );
    }
    if let Some(first) = invalid_names.first() {
        warn!(
            file = %path.display(),
            lines = invalid_names.len(),
            first_line = first,
            "skipped {} line(s) of the sticky address file whose common name no certificate \
             of the server can have (1 to {MAX_CERT_NAME_LENGTH} letters, digits, '-', '_', \
             '.' and '@', starting with a letter or digit)",
            invalid_names.len()
        );
    }
    entries
}

/// Replaces the file with `entries`, atomically.
fn write_file(path: &Path, server: &str, entries: &[StickyEntry]) -> Result<(), PkiError> {
    pki::write_atomic(path, format(server, entries).as_bytes(), pki::PUBLIC_MODE)
}

/// A line that [`parse`] skipped.
#[derive(Debug, PartialEq, Eq)]
struct MalformedLine {
    /// Line number, counted from 1.
    number: usize,
    reason: &'static str,
}

/// The content of a file: its entries and the lines that [`parse`] skipped.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    entries: Vec<StickyEntry>,
    malformed: Vec<MalformedLine>,
    /// Numbers of well-formed lines whose common name breaks the rule for certificate names,
    /// so that no client of this server can ever claim them. An OpenVPN file, for example,
    /// may name clients "John Doe".
    invalid_names: Vec<usize>,
}

/// Parses the text of a file into its entries and the lines it skipped.
fn parse(text: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, line) in text.split(|&byte| byte == b'\n').enumerate() {
        let number = index + 1;
        match parse_line(line) {
            Ok(Some(entry)) if validate_cert_name(&entry.common_name).is_ok() => {
                parsed.entries.push(entry);
            }
            Ok(Some(_)) => parsed.invalid_names.push(number),
            Ok(None) => {}
            Err(reason) => parsed.malformed.push(MalformedLine { number, reason }),
        }
    }
    parsed
}

/// Parses one line: None for a blank line or a comment.
fn parse_line(line: &[u8]) -> Result<Option<StickyEntry>, &'static str> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8")?.trim();
    if line.is_empty() || line.starts_with(['#', ';']) {
        return Ok(None);
    }
    let mut fields = line.split(',');
    let common_name = fields.next().unwrap_or_default().trim();
    let address = fields
        .next()
        .ok_or("no address after the common name")?
        .trim();
    // A third field is OpenVPN's IPv6 address, which this pool has no use for.
    let _ipv6 = fields.next();
    if fields.next().is_some() {
        return Err("more than three fields");
    }
    if common_name.is_empty() {
        return Err("empty common name");
    }
    let address = address.parse().map_err(|_| "invalid IPv4 address")?;
    Ok(Some(StickyEntry {
        common_name: common_name.to_owned(),
        address,
    }))
}

/// Writes the text of a file: a comment naming the server, then one line per entry.
fn format(server: &str, entries: &[StickyEntry]) -> String {
    let mut text = format!(
        "# Tunnel addresses of the known clients of SSL server {server:?}, one\n\
         # \"common name,address\" line each. sslvpn serve rewrites this file while it runs.\n"
    );
    for entry in entries {
        // Names that the format cannot carry are left out. The PKI issues no such name.
        if !fits_format(&entry.common_name) {
            continue;
        }
        text.push_str(&entry.common_name);
        text.push(',');
        text.push_str(&entry.address.to_string());
        text.push('\n');
    }
    text
}

/// Returns whether [`parse_line`] reads `common_name` back unchanged.
fn fits_format(common_name: &str) -> bool {
    !common_name.is_empty()
        && common_name.trim() == common_name
        && !common_name.starts_with(['#', ';'])
        && !common_name.contains([',', '\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(common_name: &str, address: &str) -> StickyEntry {
        StickyEntry {
            common_name: common_name.to_owned(),
            address: address.parse().unwrap(),
        }
    }

    fn server(cidr: &str) -> SslServer {
        let text = format!(
            "[gateway]\npublic_address = \"vpn.example.com\"\nmax_connections = 1\n\
             [[ssl_server]]\nname = \"office\"\nlocal_networks = [\"192.168.77.0/24\"]\n\
             client_cidr = \"{cidr}\"\n"
        );
        let config = crate::config::Config::from_toml(&text).unwrap().config;
        config.ssl_servers[0].clone()
    }

    /// Starts `server` on a new store and returns both.
    fn start(pki_dir: &Path, server: &SslServer) -> (StickyAddresses, SharedPool) {
        let mut sticky = StickyAddresses::default();
        let pool = sticky.open_pool(pki_dir, server);
        sticky.started(pki_dir, &server.name, pool.clone());
        (sticky, pool)
    }

    #[test]
    fn file_round_trip() {
        let entries = vec![
            entry("alice", "10.8.0.6"),
            entry("bob.smith@example.com", "10.8.0.10"),
            entry("c-3_po", "10.8.255.254"),
        ];
        let text = format("office", &entries);
        assert!(text.starts_with("# "), "{text}");
        assert!(text.contains("\nalice,10.8.0.6\n"), "{text}");
        let parsed = parse(text.as_bytes());
        assert_eq!(parsed.entries, entries);
        assert_eq!(parsed.malformed, []);
        assert_eq!(parsed.invalid_names, Vec::<usize>::new());
    }

    #[test]
    fn format_skips_unwritable_names() {
        let entries = vec![
            entry("a,b", "10.8.0.6"),
            entry(" padded", "10.8.0.10"),
            entry("#hash", "10.8.0.14"),
            entry("two\nlines", "10.8.0.18"),
            entry("kept", "10.8.0.22"),
        ];
        let parsed = parse(format("office", &entries).as_bytes());
        assert_eq!(parsed.entries, vec![entry("kept", "10.8.0.22")]);
        assert_eq!(parsed.malformed, []);
    }

    #[test]
    fn parse_reads_openvpn_lines() {
        let text = "; written by OpenVPN\n\nalice,10.8.0.4,\nbob,10.8.0.8,fd00::1000\r\n";
        let parsed = parse(text.as_bytes());
        assert_eq!(
            parsed.entries,
            vec![entry("alice", "10.8.0.4"), entry("bob", "10.8.0.8")]
        );
        assert_eq!(parsed.malformed, []);
    }

    #[test]
    fn parse_skips_malformed_lines() {
        let mut text = b"alice,10.8.0.6\n\
            no-address\n\
            ,10.8.0.10\n\
            bob,10.8.0.300\n\
            carol,10.8.0.14,,extra\n\
            dave,fd00::1\n"
            .to_vec();
        text.extend_from_slice(b"erin\xff,10.8.0.18\n");
        text.extend_from_slice(b"frank,10.8.0.22");
        let parsed = parse(&text);
        assert_eq!(
            parsed.entries,
            vec![entry("alice", "10.8.0.6"), entry("frank", "10.8.0.22")]
        );
        let expected = [
            (2, "no address after the common name"),
            (3, "empty common name"),
            (4, "invalid IPv4 address"),
            (5, "more than three fields"),
            (6, "invalid IPv4 address"),
            (7, "not UTF-8"),
        ];
        let expected: Vec<MalformedLine> = expected
            .into_iter()
            .map(|(number, reason)| MalformedLine { number, reason })
            .collect();
        assert_eq!(parsed.malformed, expected);
    }

    #[test]
    fn parse_skips_impossible_names() {
        let too_long = format!("{},10.8.0.30", "a".repeat(MAX_CERT_NAME_LENGTH + 1));
        let longest = format!("{},10.8.0.34", "b".repeat(MAX_CERT_NAME_LENGTH));
        let text = [
            "alice,10.8.0.6",
            "John Doe,10.8.0.10",
            ".hidden,10.8.0.14",
            "-flag,10.8.0.18",
            "ünï,10.8.0.22",
            "semi;colon,10.8.0.26",
            too_long.as_str(),
            longest.as_str(),
            "bob.smith@example.com,10.8.0.38",
            "",
        ]
        .join("\n");
        let parsed = parse(text.as_bytes());
        assert_eq!(
            parsed.entries,
            vec![
                entry("alice", "10.8.0.6"),
                entry(&"b".repeat(MAX_CERT_NAME_LENGTH), "10.8.0.34"),
                entry("bob.smith@example.com", "10.8.0.38"),
            ]
        );
        assert_eq!(parsed.invalid_names, vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(parsed.malformed, []);
    }

    #[test]
    fn missing_file_has_no_entries() {
        let folder = tempfile::tempdir().unwrap();
        assert_eq!(read_file(&folder.path().join("ipp.txt")), []);
    }

    #[test]
    fn written_file_is_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("ipp.txt");
        let entries = vec![entry("alice", "10.8.0.6"), entry("bob", "10.8.0.10")];
        write_file(&path, "office", &entries).unwrap();
        assert_eq!(read_file(&path), entries);
        let leftovers: Vec<_> = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|item| item.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["ipp.txt"]);
    }

    #[test]
    fn restart_carries_entries_over() {
        // Without a PKI folder the file cannot be written, so only memory carries the
        // entries.
        let pki_dir = tempfile::tempdir().unwrap();
        let office = server("10.8.0.0/24");
        let (mut sticky, pool) = start(pki_dir.path(), &office);
        let mut leased = pool.lock();
        let alice = leased.allocate("alice").unwrap();
        let bob = leased.allocate("bob").unwrap();
        drop(leased);
        sticky.stopped("office");

        let pool = sticky.open_pool(pki_dir.path(), &office);
        let mut restarted = pool.lock();
        assert_eq!(restarted.allocate("bob").unwrap(), bob);
        assert_eq!(restarted.allocate("alice").unwrap(), alice);
    }

    #[test]
    fn daemon_restart_reads_the_file() {
        let pki_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(pki_dir.path().join("office")).unwrap();
        let office = server("10.8.0.0/24");
        let (mut sticky, pool) = start(pki_dir.path(), &office);
        let alice = pool.lock().allocate("alice").unwrap();
        sticky.stopped("office");
        let text = std::fs::read_to_string(pki_dir.path().join("office/ipp.txt")).unwrap();
        assert!(text.contains("\nalice,10.8.0.6\n"), "{text}");

        // A new daemon has nothing in memory.
        let mut sticky = StickyAddresses::default();
        let pool = sticky.open_pool(pki_dir.path(), &office);
        let mut restarted = pool.lock();
        assert_ne!(restarted.allocate("bob").unwrap().address, alice.address);
        assert_eq!(restarted.allocate("alice").unwrap(), alice);
    }

    #[test]
    fn failed_start_keeps_file_entries() {
        let pki_dir = tempfile::tempdir().unwrap();
        let folder = pki_dir.path().join("office");
        std::fs::create_dir(&folder).unwrap();
        let file = folder.join("ipp.txt");
        std::fs::write(&file, "alice,10.8.0.10\n").unwrap();
        let office = server("10.8.0.0/24");
        let mut sticky = StickyAddresses::default();
        let first = sticky.open_pool(pki_dir.path(), &office);
        assert_eq!(
            first.lock().sticky_entries(),
            vec![entry("alice", "10.8.0.10")]
        );

        // The start failed, so the pool was never handed to `started`. A retry uses the
        // entries read before instead of the file.
        drop(first);
        std::fs::write(&file, "bob,10.8.0.14\n").unwrap();
        let retried = sticky.open_pool(pki_dir.path(), &office);
        assert_eq!(
            retried.lock().sticky_entries(),
            vec![entry("alice", "10.8.0.10")]
        );

        // Once started, the entries count as saved: nothing is written without a change.
        sticky.started(pki_dir.path(), "office", retried);
        sticky.save_changed();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "bob,10.8.0.14\n");
    }

    #[test]
    fn changed_pool_drops_entries_outside() {
        let pki_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(pki_dir.path().join("office")).unwrap();
        let (mut sticky, pool) = start(pki_dir.path(), &server("10.8.0.0/24"));
        for name in ["alice", "bob"] {
            pool.lock().allocate(name).unwrap();
        }
        sticky.stopped("office");

        let pool = sticky.open_pool(pki_dir.path(), &server("10.8.0.0/29"));
        assert_eq!(
            pool.lock().sticky_entries(),
            vec![entry("alice", "10.8.0.6")]
        );
        let pool = sticky.open_pool(pki_dir.path(), &server("10.9.0.0/24"));
        assert_eq!(pool.lock().sticky_entries(), []);
    }

    #[test]
    fn forgotten_server_starts_empty() {
        let pki_dir = tempfile::tempdir().unwrap();
        let office = server("10.8.0.0/24");
        let (mut sticky, pool) = start(pki_dir.path(), &office);
        pool.lock().allocate("alice").unwrap();
        sticky.forget("office");
        sticky.stopped("office");
        assert!(!pki_dir.path().join("office").exists());
        let pool = sticky.open_pool(pki_dir.path(), &office);
        assert_eq!(pool.lock().sticky_entries(), []);
    }

    #[test]
    fn save_changed_writes_only_changes() {
        let pki_dir = tempfile::tempdir().unwrap();
        let folder = pki_dir.path().join("office");
        std::fs::create_dir(&folder).unwrap();
        let file = folder.join("ipp.txt");
        let (mut sticky, pool) = start(pki_dir.path(), &server("10.8.0.0/24"));
        sticky.save_changed();
        assert!(!file.exists(), "written without a change");

        let alice = pool.lock().allocate("alice").unwrap();
        sticky.save_changed();
        let parsed = parse(&std::fs::read(&file).unwrap());
        assert_eq!(parsed.entries, vec![entry("alice", "10.8.0.6")]);

        std::fs::remove_file(&file).unwrap();
        pool.lock().release(alice.address).unwrap();
        sticky.save_changed();
        assert!(!file.exists(), "written again without a new name");
    }

    #[test]
    fn failed_write_retried_after_restart() {
        let pki_dir = tempfile::tempdir().unwrap();
        let folder = pki_dir.path().join("office");
        let office = server("10.8.0.0/24");
        let (mut sticky, pool) = start(pki_dir.path(), &office);
        pool.lock().allocate("alice").unwrap();
        // The folder does not exist, so the write fails.
        sticky.stopped("office");

        std::fs::create_dir(&folder).unwrap();
        let pool = sticky.open_pool(pki_dir.path(), &office);
        sticky.started(pki_dir.path(), "office", pool);
        sticky.save_changed();
        let parsed = parse(&std::fs::read(folder.join("ipp.txt")).unwrap());
        assert_eq!(parsed.entries, vec![entry("alice", "10.8.0.6")]);
    }
}
