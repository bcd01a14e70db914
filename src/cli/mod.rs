//! Command-line interface: one subcommand per admin task.

mod cert;
mod dispatch;
mod server;
mod session;
mod user;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sslvpn::config::{Config, ConfigError, Loaded};

#[derive(Debug, Parser)]
#[command(
    name = "sslvpn",
    version,
    about = "An OpenVPN-compatible SSL-VPN server"
)]
pub struct Cli {
    /// Log filter, e.g. "info" or "sslvpn=debug"; overrides the RUST_LOG environment variable.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file and print one summary line per SSL server.
    Check(ConfigArg),
    /// Run every SSL server of a configuration file.
    Serve(ConfigArg),
    /// Manage client certificates: create, list, export, delete.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Manage the users of a two-factor server's local backend: add, passwd, delete, list.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage SSL servers: create, list, show, modify, delete.
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// Manage the connected clients of a running daemon: list, kill.
    #[command(subcommand)]
    Session(session::SessionCommand),
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(filter) => EnvFilter::new(filter),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check(&args.config),
        Command::Serve(args) => serve(&args.config),
        Command::Cert(command) => {
            let context = cert::context(&command);
            cert::run(command).context(context)
        }
        Command::User(command) => {
            let context = user::context(&command);
            user::run(command).context(context)
        }
        Command::Server(command) => {
            let context = server::context(&command);
            server::run(command).context(context)
        }
        Command::Session(command) => {
            let context = session::context(&command);
            session::run(command).context(context)
        }
    }
}

/// Loads a configuration, printing its warnings, or prints every violation and fails.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    match Config::load(path) {
        Ok(Loaded { config, warnings }) => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            Ok(config)
        }
        Err(error @ ConfigError::Invalid { .. }) => {
            Err(anyhow::Error::new(error).context("the configuration was not loaded"))
        }
        Err(error) => Err(error.into()),
    }
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(path)?;
    if let Some(token_file) = &config.gateway.admin_token_file {
        sslvpn::admin::http::check_token_file(token_file)
            .context("[gateway] admin_token_file is not usable")?;
    }
    for server in &config.ssl_servers {
        println!("{}", server.summary());
    }
    println!(
        "{}: valid, {} SSL server(s), max_connections {}",
        path.display(),
        config.ssl_servers.len(),
        config.gateway.max_connections
    );
    Ok(ExitCode::SUCCESS)
}

fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(path)?;
    sslvpn::daemon::serve(path, &config).context("sslvpn serve failed")?;
    Ok(ExitCode::SUCCESS)
}
