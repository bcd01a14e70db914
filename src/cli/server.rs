//! `sslvpn server`: create, list, show, modify and delete SSL servers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use sslvpn::admin::{ChangeReport, Reply, Request, ServerFields, ServerView};

use super::ConfigArg;
use super::dispatch::{Dispatcher, unexpected};

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add an SSL server to the config file and create its CA.
    Create(FieldArgs),
    /// Print one summary line per SSL server.
    List(ConfigArg),
    /// Print the settings of one SSL server, one per line.
    Show(NameArgs),
    /// Change settings of an SSL server; the options given are changed, the others kept.
    Modify(FieldArgs),
    /// Remove an SSL server with its CA and client certificates; its users file is kept.
    Delete(NameArgs),
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Name of the SSL server.
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct FieldArgs {
    #[command(flatten)]
    pub server: NameArgs,
    /// Network behind the gateway that clients may reach, as a CIDR; repeat for several.
    #[arg(long = "local-network", value_name = "CIDR")]
    pub local_networks: Vec<String>,
    /// Pool of tunnel addresses, as a CIDR.
    #[arg(long, value_name = "CIDR")]
    pub client_cidr: Option<String>,
    /// Transport protocol of the listener.
    #[arg(long, value_parser = ["tcp", "udp"])]
    pub protocol: Option<String>,
    /// TCP or UDP port of the listener.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Fallback data-channel cipher, e.g. AES-256-CBC.
    #[arg(long, value_name = "CIPHER")]
    pub cipher: Option<String>,
    /// Compression of the data channel, for clients with comp-lzo profiles.
    #[arg(long, value_enum)]
    pub compression: Option<Switch>,
    /// Ask clients for a username and password besides the certificate.
    #[arg(long, value_enum)]
    pub two_factor: Option<Switch>,
    /// Wrap the control channel with tls-crypt. Changing it requires new client profiles.
    #[arg(long, value_enum)]
    pub tls_crypt: Option<Switch>,
    /// Assignment of tunnel addresses: one /30 per client (net30) or one address (subnet).
    #[arg(long, value_parser = ["net30", "subnet"])]
    pub topology: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl FieldArgs {
    fn fields(&self) -> ServerFields {
        ServerFields {
            local_networks: (!self.local_networks.is_empty()).then(|| self.local_networks.clone()),
            client_cidr: self.client_cidr.clone(),
            protocol: self.protocol.clone(),
            port: self.port,
            cipher: self.cipher.clone(),
            compression: self.compression.map(|switch| switch == Switch::On),
            two_factor: self.two_factor.map(|switch| switch == Switch::On),
            tls_crypt: self.tls_crypt.map(|switch| switch == Switch::On),
            topology: self.topology.clone(),
        }
    }
}

pub fn run(command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Create(args) => change(
            &args.server.config,
            Request::CreateServer {
                server: args.server.name.clone(),
                fields: args.fields(),
            },
        ),
        ServerCommand::List(args) => list(&args),
        ServerCommand::Show(args) => show(&args),
        ServerCommand::Modify(args) => change(
            &args.server.config,
            Request::ModifyServer {
                server: args.server.name.clone(),
                fields: args.fields(),
            },
        ),
        ServerCommand::Delete(args) => change(
            &args.config,
            Request::DeleteServer {
                server: args.name.clone(),
            },
        ),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Returns the context line for an error of `command`, e.g. "sslvpn server modify failed".
pub fn context(command: &ServerCommand) -> String {
    let verb = match command {
        ServerCommand::Create(_) => "create",
        ServerCommand::List(_) => "list",
        ServerCommand::Show(_) => "show",
        ServerCommand::Modify(_) => "modify",
        ServerCommand::Delete(_) => "delete",
    };
    format!("sslvpn server {verb} failed")
}

fn change(config: &std::path::Path, request: Request) -> anyhow::Result<()> {
    match Dispatcher::open(config)?.send(&request)? {
        Reply::Changed { change } => {
            print!("{}", format_change(&change));
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

fn list(args: &ConfigArg) -> anyhow::Result<()> {
    match Dispatcher::open(&args.config)?.send(&Request::ListServers)? {
        Reply::Servers { servers } => {
            for server in &servers {
                println!("{}", summary(server));
            }
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

fn show(args: &NameArgs) -> anyhow::Result<()> {
    let request = Request::ShowServer {
        server: args.name.clone(),
    };
    match Dispatcher::open(&args.config)?.send(&request)? {
        Reply::Server { server } => {
            print!("{}", format_fields(&server));
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

/// Formats the report's message and then one line per revoked certificate.
fn format_change(change: &ChangeReport) -> String {
    let mut text = format!("{}\n", change.message);
    for name in &change.revoked_certificates {
        text.push_str(&format!("revoked certificate {name:?}\n"));
    }
    text
}

/// Formats a server on one line, as `sslvpn check` does.
fn summary(server: &ServerView) -> String {
    let backend = server
        .auth_backend
        .as_ref()
        .map(|backend| format!(" (backend {backend})"))
        .unwrap_or_default();
    let sessions = match (server.running, server.sessions, server.retry_in_seconds) {
        (Some(false), _, Some(seconds)) => {
            format!(", not running, next start attempt in {seconds} s (see the daemon's log)")
        }
        (Some(false), _, None) => ", not running (see the daemon's log)".to_owned(),
        (_, Some(count), _) => format!(", {count} session(s)"),
        (_, None, _) => String::new(),
    };
    format!(
        "{}: {}/{}, client_cidr {}, local_networks {}, cipher {}, topology {}, compression {}, \
         tls_crypt {}, two_factor {}{backend}{sessions}",
        server.name,
        server.protocol,
        server.port,
        server.client_cidr,
        server.local_networks.join(" "),
        server.cipher,
        server.topology,
        on_off(server.compression),
        on_off(server.tls_crypt),
        on_off(server.two_factor),
    )
}

/// Formats a server as `field: value` lines, in the config file's field names.
fn format_fields(server: &ServerView) -> String {
    let mut lines = vec![
        ("name", server.name.clone()),
        ("local_networks", server.local_networks.join(" ")),
        ("client_cidr", server.client_cidr.clone()),
        ("protocol", server.protocol.clone()),
        ("port", server.port.to_string()),
        ("cipher", server.cipher.clone()),
        ("compression", on_off(server.compression).to_owned()),
        ("two_factor", on_off(server.two_factor).to_owned()),
        ("tls_crypt", on_off(server.tls_crypt).to_owned()),
        ("topology", server.topology.clone()),
    ];
    if let Some(backend) = &server.auth_backend {
        lines.push(("auth_backend", backend.clone()));
    }
    if let Some(count) = server.sessions {
        lines.push(("sessions", count.to_string()));
    }
    lines
        .into_iter()
        .map(|(field, value)| format!("{field}: {value}\n"))
        .collect()
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}
