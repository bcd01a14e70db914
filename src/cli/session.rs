//! `sslvpn session`: the connected clients of a running daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sslvpn::admin::{Reply, Request, SessionView};

use super::dispatch::{Dispatcher, unexpected};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Print one line per connected client.
    List(ListArgs),
    /// Disconnect one client.
    Kill(KillArgs),
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
pub struct KillArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Session id, as `sslvpn session list` prints it.
    #[arg(long, value_name = "N")]
    pub id: u64,
}

pub fn run(command: SessionCommand) -> anyhow::Result<ExitCode> {
    match command {
        SessionCommand::List(args) => list(&args),
        SessionCommand::Kill(args) => kill(&args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Returns the context line for an error of `command`, e.g. "sslvpn session kill failed".
pub fn context(command: &SessionCommand) -> String {
    let verb = match command {
        SessionCommand::List(_) => "list",
        SessionCommand::Kill(_) => "kill",
    };
    format!("sslvpn session {verb} failed")
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let request = Request::ListSessions {
        server: args.server.clone(),
    };
    match Dispatcher::open(&args.config)?.send(&request)? {
        Reply::Sessions { sessions } => {
            for session in &sessions {
                println!("{}", format_session(session));
            }
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

fn kill(args: &KillArgs) -> anyhow::Result<()> {
    match Dispatcher::open(&args.config)?.send(&Request::KillSession { id: args.id })? {
        Reply::Done => {
            println!("disconnected session {}", args.id);
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

/// Formats a session: id, server, common name, real and virtual address, bytes in and out,
/// start time and cipher.
fn format_session(session: &SessionView) -> String {
    format!(
        "{} {} {} {} {} in={} out={} since={} {}",
        session.id,
        session.server,
        session.common_name,
        session.real_address,
        session.virtual_address,
        session.bytes_in,
        session.bytes_out,
        session.connected_since,
        session.cipher
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_line_has_every_field() {
        let session = SessionView {
            id: 7,
            server: "office".to_owned(),
            common_name: "alice".to_owned(),
            username: None,
            real_address: "203.0.113.5:51000".to_owned(),
            virtual_address: "10.8.0.6".to_owned(),
            bytes_in: 1200,
            bytes_out: 3400,
            connected_since: "2026-01-02T03:04:05Z".to_owned(),
            cipher: "AES-256-GCM".to_owned(),
        };
        assert_eq!(
            format_session(&session),
            "7 office alice 203.0.113.5:51000 10.8.0.6 in=1200 out=3400 \
             since=2026-01-02T03:04:05Z AES-256-GCM"
        );
    }
}
