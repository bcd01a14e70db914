//! `sslvpn cert`: client certificates and their profiles.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use sslvpn::admin::{CertView, ProfileFormat, Reply, Request};
use sslvpn::pki::{self, DEFAULT_CLIENT_DAYS, MAX_CLIENT_DAYS, SECRET_MODE};
use zeroize::Zeroizing;

use super::dispatch::{Dispatcher, unexpected};

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
    let dispatcher = Dispatcher::open(&args.config)?;
    let request = Request::CreateCert {
        server: args.server.clone(),
        name: args.name.clone(),
        days: Some(args.days),
    };
    let cert = match dispatcher.send(&request)? {
        Reply::Cert { cert } => cert,
        other => return Err(unexpected(&other)),
    };
    println!(
        "issued certificate {:?} for SSL server {:?}: serial {}, expires {}",
        cert.name, args.server, cert.serial, cert.expires
    );
    Ok(())
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let dispatcher = Dispatcher::open(&args.config)?;
    let servers = match &args.server {
        Some(name) => vec![name.clone()],
        None => match dispatcher.send(&Request::ListServers)? {
            Reply::Servers { servers } => servers.into_iter().map(|server| server.name).collect(),
            other => return Err(unexpected(&other)),
        },
    };
    let mut rows = Vec::new();
    for server in servers {
        let request = Request::ListCerts {
            server: server.clone(),
        };
        match dispatcher.send(&request)? {
            Reply::Certs { certs } => {
                rows.extend(certs.into_iter().map(|cert| (server.clone(), cert)));
            }
            other => return Err(unexpected(&other)),
        }
    }
    print!("{}", format_table(&rows));
    Ok(())
}

fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let dispatcher = Dispatcher::open(&args.config)?;
    let format = match args.format {
        ExportFormat::Ovpn => ProfileFormat::Ovpn,
        ExportFormat::Zip => ProfileFormat::Zip,
    };
    let request = Request::ExportCert {
        server: args.server.clone(),
        name: args.name.clone(),
        format,
    };
    let bytes = match dispatcher.send(&request)? {
        Reply::Profile { bytes, .. } => Zeroizing::new(bytes),
        other => return Err(unexpected(&other)),
    };
    pki::write_new(&args.output, &bytes, SECRET_MODE)?;
    println!(
        "wrote the profile of {:?} for SSL server {:?} to {}",
        args.name,
        args.server,
        args.output.display()
    );
    Ok(())
}

fn delete(args: &DeleteArgs) -> anyhow::Result<()> {
    let dispatcher = Dispatcher::open(&args.config)?;
    let request = Request::DeleteCert {
        server: args.server.clone(),
        name: args.name.clone(),
    };
    let cert = match dispatcher.send(&request)? {
        Reply::Cert { cert } => cert,
        other => return Err(unexpected(&other)),
    };
    println!(
        "revoked certificate {:?} of SSL server {:?} (serial {}) and removed its private key",
        cert.name, args.server, cert.serial
    );
    Ok(())
}

/// Formats the certificate table, one row per certificate under a header line.
fn format_table(rows: &[(String, CertView)]) -> String {
    let header = ["SERVER", "NAME", "SERIAL", "EXPIRES", "STATUS"].map(str::to_owned);
    let mut cells = vec![header];
    for (server, cert) in rows {
        cells.push([
            server.clone(),
            cert.name.clone(),
            cert.serial.clone(),
            cert.expires.clone(),
            cert.status.clone(),
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
    use super::*;

    fn cert(name: &str, expires: &str, status: &str) -> CertView {
        CertView {
            name: name.to_owned(),
            serial: "4A01".to_owned(),
            issued: expires.to_owned(),
            expires: expires.to_owned(),
            status: status.to_owned(),
        }
    }

    #[test]
    fn table_has_header_and_status() {
        let rows = vec![
            (
                "office".to_owned(),
                cert("alice", "2025-06-16T15:06:40Z", "valid"),
            ),
            (
                "office".to_owned(),
                cert("bob", "2025-06-16T15:06:40Z", "revoked"),
            ),
            (
                "lab".to_owned(),
                cert("carol", "2025-06-15T15:06:40Z", "expired"),
            ),
        ];
        let table = format_table(&rows);
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
