//! `sslvpn cert`: client certificates and their profiles.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use sslvpn::config::{Config, SslServer};
use sslvpn::pki::{
    self, DEFAULT_CLIENT_DAYS, IndexEntry, MAX_CLIENT_DAYS, ProfileSettings, SECRET_MODE, ServerPki,
};
use time::OffsetDateTime;

use super::load_config;

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a client certificate, creating the server's CA on first use.
    Create(CreateArgs),
    /// Print the client certificates of one or every SSL server.
    List(ListArgs),
    /// Write a client profile with the CA, certificate and private key.
    Export(ExportArgs),
    /// Revoke a client certificate and remove its private key.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// SSL server whose CA signs the certificate.
    #[arg(long, value_name = "NAME")]
    pub server: String,
    /// Certificate name, used as its common name: 1 to 64 letters, digits, '-', '_', '.', '@'.
    #[arg(long, value_name = "CERT")]
    pub name: String,
    /// Lifetime in days.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_CLIENT_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLIENT_DAYS)),
    )]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Only this SSL server; every server when omitted.
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// SSL server the certificate belongs to.
    #[arg(long, value_name = "NAME")]
    pub server: String,
    /// Certificate name.
    #[arg(long, value_name = "CERT")]
    pub name: String,
    /// File to create, with mode 0600; an existing file is never replaced.
    #[arg(long, short, value_name = "PATH")]
    pub output: PathBuf,
    /// Profile packaging.
    #[arg(long, value_enum, default_value_t = ExportFormat::Ovpn)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// SSL server the certificate belongs to.
    #[arg(long, value_name = "NAME")]
    pub server: String,
    /// Certificate name.
    #[arg(long, value_name = "CERT")]
    pub name: String,
}

/// Packaging of an exported profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One .ovpn file with the CA, certificate and key inline.
    Ovpn,
    /// A zip of config.ovpn with ca.crt, client.crt and client.key beside it.
    Zip,
}

pub fn run(command: CertCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertCommand::Create(args) => create(&args),
        CertCommand::List(args) => list(&args),
        CertCommand::Export(args) => export(&args),
        CertCommand::Delete(args) => delete(&args),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let server = find_server(&config, &args.server, &args.config)?;
    let pki = ServerPki::open_or_create(&config.gateway.pki_dir, &server.name)?;
    let entry = pki.issue_client(&args.name, args.days)?;
    println!(
        "issued certificate {:?} for SSL server {:?}: serial {}, expires {}",
        entry.name,
        server.name,
        entry.serial,
        pki::format_time(entry.expires)
    );
    Ok(())
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let servers: Vec<&SslServer> = match &args.server {
        Some(name) => vec![find_server(&config, name, &args.config)?],
        None => config.ssl_servers.iter().collect(),
    };
    let mut rows = Vec::new();
    for server in servers {
        let pki = match ServerPki::open(&config.gateway.pki_dir, &server.name) {
            Ok(pki) => pki,
            Err(pki::PkiError::NotCreated { .. }) => continue,
            Err(error) => return Err(error.into()),
        };
        for entry in pki.list_clients()? {
            rows.push((server.name.clone(), entry));
        }
    }
    print!("{}", format_table(&rows, OffsetDateTime::now_utc()));
    Ok(())
}

fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let server = find_server(&config, &args.server, &args.config)?;
    let pki = ServerPki::open(&config.gateway.pki_dir, &server.name)?;
    let credentials = pki.client_credentials(&args.name)?;
    let settings = ProfileSettings::new(&config.gateway, server);
    let bytes = match args.format {
        ExportFormat::Ovpn => settings.inline_profile(&credentials).into_bytes(),
        ExportFormat::Zip => settings.zip_bundle(&credentials)?,
    };
    pki::write_new(&args.output, &bytes, SECRET_MODE)?;
    println!(
        "wrote the profile of {:?} for SSL server {:?} to {}",
        credentials.entry.name,
        server.name,
        args.output.display()
    );
    Ok(())
}

fn delete(args: &DeleteArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let server = find_server(&config, &args.server, &args.config)?;
    let mut pki = ServerPki::open(&config.gateway.pki_dir, &server.name)?;
    let entry = pki.revoke_client(&args.name)?;
    println!(
        "revoked certificate {:?} of SSL server {:?} (serial {}) and removed its private key",
        entry.name, server.name, entry.serial
    );
    Ok(())
}

pub(super) fn find_server<'a>(
    config: &'a Config,
    name: &str,
    path: &Path,
) -> anyhow::Result<&'a SslServer> {
    config.server(name).ok_or_else(|| {
        let names: Vec<&str> = config
            .ssl_servers
            .iter()
            .map(|server| server.name.as_str())
            .collect();
        anyhow!(
            "{} has no SSL server named {name:?}; configured servers: {}",
            path.display(),
            names.join(", ")
        )
    })
}

/// Formats the certificate table, one row per certificate under a header line.
fn format_table(rows: &[(String, IndexEntry)], now: OffsetDateTime) -> String {
    let header = ["SERVER", "NAME", "SERIAL", "EXPIRES", "STATUS"].map(str::to_owned);
    let mut cells = vec![header];
    for (server, entry) in rows {
        cells.push([
            server.clone(),
            entry.name.clone(),
            entry.serial.to_string(),
            pki::format_time(entry.expires),
            entry.status_at(now).to_string(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &cells {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// Returns the context line for an error of `command`, e.g. "sslvpn cert create failed".
pub fn context(command: &CertCommand) -> String {
    let verb = match command {
        CertCommand::Create(_) => "create",
        CertCommand::List(_) => "list",
        CertCommand::Export(_) => "export",
        CertCommand::Delete(_) => "delete",
    };
    format!("sslvpn cert {verb} failed")
}

#[cfg(test)]
mod tests {
    use sslvpn::pki::{RecordState, Serial};

    use super::*;

    fn entry(name: &str, state: RecordState, expires: OffsetDateTime) -> IndexEntry {
        IndexEntry {
            name: name.to_owned(),
            serial: Serial::from_bytes(&[0x4a, 0x01]),
            issued: expires,
            expires,
            state,
            revoked: None,
        }
    }

    #[test]
    fn table_has_header_and_status() {
        let now = OffsetDateTime::from_unix_timestamp(1_750_000_000).expect("time");
        let later = now + time::Duration::days(1);
        let rows = vec![
            (
                "office".to_owned(),
                entry("alice", RecordState::Valid, later),
            ),
            (
                "office".to_owned(),
                entry("bob", RecordState::Revoked, later),
            ),
            ("lab".to_owned(), entry("carol", RecordState::Valid, now)),
        ];
        let table = format_table(&rows, now);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "SERVER  NAME   SERIAL  EXPIRES               STATUS"
        );
        assert_eq!(
            lines[1],
            "office  alice  4A01    2025-06-16T15:06:40Z  valid"
        );
        assert!(lines[2].ends_with("revoked"));
        assert!(lines[3].ends_with("expired"));
    }
}
