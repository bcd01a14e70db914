//! `sslvpn user`: the users of an SSL server's local identity backend.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use sslvpn::auth::password::hash_password;
use sslvpn::auth::users::{self, UserFile};
use sslvpn::config::{AuthBackend, AuthSettings, Config};
use zeroize::Zeroizing;

use super::cert::find_server;
use super::load_config;

/// Shortest password `sslvpn user` accepts, in bytes.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longest password, in bytes: OpenVPN clients send at most 127.
pub const MAX_PASSWORD_LENGTH: usize = 127;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user with a password.
    Add(PasswordArgs),
    /// Change the password of a user.
    Passwd(PasswordArgs),
    /// Remove a user.
    Delete(NameArgs),
    /// Print the usernames of an SSL server, one per line.
    List(ServerArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Path of the gateway configuration file (TOML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// SSL server whose users file (auth.users_file) to use.
    #[arg(long, value_name = "NAME")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Username: 1 to 64 letters, digits, '-', '_', '.', '@'.
    #[arg(long, value_name = "USER")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PasswordArgs {
    #[command(flatten)]
    pub user: NameArgs,
    /// Read the password from the first line of standard input instead of the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

pub fn run(command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add(args) => add(&args),
        UserCommand::Passwd(args) => passwd(&args),
        UserCommand::Delete(args) => delete(&args),
        UserCommand::List(args) => list(&args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Returns the context line for an error of `command`, e.g. "sslvpn user add failed".
pub fn context(command: &UserCommand) -> String {
    let verb = match command {
        UserCommand::Add(_) => "add",
        UserCommand::Passwd(_) => "passwd",
        UserCommand::Delete(_) => "delete",
        UserCommand::List(_) => "list",
    };
    format!("sslvpn user {verb} failed")
}

fn add(args: &PasswordArgs) -> anyhow::Result<()> {
    let (server, path) = users_file(&args.user.server)?;
    users::validate_username(&args.user.name)?;
    let hash = read_and_hash(args)?;
    let _lock = users::lock(&path)?;
    let mut file = UserFile::load_or_empty(&path)?;
    file.add(&args.user.name, hash)?;
    file.save(&path)?;
    println!(
        "added user {:?} to SSL server {server:?} ({})",
        args.user.name,
        path.display()
    );
    Ok(())
}

fn passwd(args: &PasswordArgs) -> anyhow::Result<()> {
    let (server, path) = users_file(&args.user.server)?;
    // Fails before the password prompt when the user does not exist.
    if UserFile::load(&path)?.hash_of(&args.user.name).is_none() {
        bail!(
            "SSL server {server:?} has no user {:?}; add it with `sslvpn user add`",
            args.user.name
        );
    }
    let hash = read_and_hash(args)?;
    let _lock = users::lock(&path)?;
    let mut file = UserFile::load(&path)?;
    file.set_password(&args.user.name, hash)?;
    file.save(&path)?;
    println!(
        "changed the password of user {:?} of SSL server {server:?}",
        args.user.name
    );
    Ok(())
}

fn delete(args: &NameArgs) -> anyhow::Result<()> {
    let (server, path) = users_file(&args.server)?;
    let _lock = users::lock(&path)?;
    let mut file = UserFile::load(&path)?;
    file.remove(&args.name)?;
    file.save(&path)?;
    println!(
        "removed user {:?} from SSL server {server:?}; a running sslvpn serve ends the \
         user's sessions within seconds",
        args.name
    );
    Ok(())
}

fn list(args: &ServerArgs) -> anyhow::Result<()> {
    let (_, path) = users_file(args)?;
    let file = UserFile::load_or_empty(&path)?;
    for name in file.names() {
        println!("{name}");
    }
    Ok(())
}

/// Returns the server's name and the users file of its local backend.
fn users_file(args: &ServerArgs) -> anyhow::Result<(String, PathBuf)> {
    let config: Config = load_config(&args.config)?;
    let server = find_server(&config, &args.server, &args.config)?;
    match &server.auth {
        Some(AuthSettings {
            backend: AuthBackend::Local { users_file },
            ..
        }) => Ok((server.name.clone(), users_file.clone())),
        Some(AuthSettings {
            backend: AuthBackend::Http { url, .. },
            ..
        }) => Err(anyhow!(
            "SSL server {:?} checks passwords with the http backend ({url}); manage its users \
             in that service",
            server.name
        )),
        None => Err(anyhow!(
            "SSL server {:?} in {} has no [ssl_server.auth] table; add one with \
             backend = \"local\" and users_file = \"users-{}.toml\"",
            server.name,
            args.config.display(),
            server.name
        )),
    }
}

/// Reads the new password (from standard input or the terminal) and hashes it.
fn read_and_hash(args: &PasswordArgs) -> anyhow::Result<String> {
    let password = if args.password_stdin {
        read_stdin_password(&mut std::io::stdin().lock())?
    } else {
        read_terminal_password(&args.user.name)?
    };
    check_password(&password)?;
    Ok(hash_password(password.as_bytes())?)
}

fn read_stdin_password(input: &mut impl BufRead) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .map_err(|error| anyhow!("reading the password from standard input failed: {error}"))?;
    let password = line.trim_end_matches(['\n', '\r']);
    Ok(Zeroizing::new(password.to_owned()))
}

fn read_terminal_password(name: &str) -> anyhow::Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() && !Path::new("/dev/tty").exists() {
        bail!("no terminal to read the password from; pass --password-stdin and pipe it in");
    }
    let prompt = format!("Password for {name}: ");
    let first = Zeroizing::new(rpassword::prompt_password(prompt).map_err(|error| {
        anyhow!(
            "reading the password from the terminal failed: {error}; use --password-stdin \
             to pipe it in"
        )
    })?);
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat the password: ")
            .map_err(|error| anyhow!("reading the password from the terminal failed: {error}"))?,
    );
    if *first != *second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Checks a new password's length: 8 to 127 bytes.
fn check_password(password: &str) -> anyhow::Result<()> {
    let length = password.len();
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length) {
        bail!(
            "the password is {length} bytes long; use {MIN_PASSWORD_LENGTH} to \
             {MAX_PASSWORD_LENGTH} bytes"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_password_drops_the_line_end() {
        let mut input = &b"correct horse\r\nsecond line\n"[..];
        let password = read_stdin_password(&mut input).unwrap();
        assert_eq!(password.as_str(), "correct horse");
    }

    #[test]
    fn stdin_password_without_line_end() {
        let mut input = &b"correct horse"[..];
        let password = read_stdin_password(&mut input).unwrap();
        assert_eq!(password.as_str(), "correct horse");
    }

    #[test]
    fn password_length_bounds() {
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(127)).is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password("").is_err());
        assert!(check_password(&"x".repeat(128)).is_err());
    }
}
