//! `sslvpn user`: the users of an SSL server's local identity backend.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use sslvpn::admin::files::{Files, check_new_password};
use sslvpn::admin::{Reply, Request};
use sslvpn::auth::users;
use zeroize::Zeroizing;

use super::dispatch::{Dispatcher, api_error, unexpected};
use super::load_config;

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
    let (server, path, dispatcher) = users_file(&args.user.server)?;
    users::validate_username(&args.user.name)?;
    let password = read_password(args)?;
    let request = Request::AddUser {
        server: server.clone(),
        name: args.user.name.clone(),
        password: password.to_string(),
    };
    expect_done(dispatcher.send(&request)?)?;
    println!(
        "added user {:?} to SSL server {server:?} ({})",
        args.user.name,
        path.display()
    );
    Ok(())
}

fn passwd(args: &PasswordArgs) -> anyhow::Result<()> {
    let (server, _, dispatcher) = users_file(&args.user.server)?;
    // Fails before the password prompt when the user does not exist.
    let list = Request::ListUsers {
        server: server.clone(),
    };
    let names = match dispatcher.send(&list)? {
        Reply::Users { users } => users,
        other => return Err(unexpected(&other)),
    };
    if !names.contains(&args.user.name) {
        bail!(
            "SSL server {server:?} has no user {:?}; add it with `sslvpn user add`",
            args.user.name
        );
    }
    let password = read_password(args)?;
    let request = Request::SetPassword {
        server: server.clone(),
        name: args.user.name.clone(),
        password: password.to_string(),
    };
    expect_done(dispatcher.send(&request)?)?;
    println!(
        "changed the password of user {:?} of SSL server {server:?}",
        args.user.name
    );
    Ok(())
}

fn delete(args: &NameArgs) -> anyhow::Result<()> {
    let (server, _, dispatcher) = users_file(&args.server)?;
    let request = Request::DeleteUser {
        server: server.clone(),
        name: args.name.clone(),
    };
    expect_done(dispatcher.send(&request)?)?;
    println!(
        "removed user {:?} from SSL server {server:?}; a running sslvpn serve ends the \
         user's sessions within seconds",
        args.name
    );
    Ok(())
}

fn list(args: &ServerArgs) -> anyhow::Result<()> {
    let (server, _, dispatcher) = users_file(args)?;
    let request = Request::ListUsers { server };
    match dispatcher.send(&request)? {
        Reply::Users { users } => {
            for name in users {
                println!("{name}");
            }
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

fn expect_done(reply: Reply) -> anyhow::Result<()> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// Loads the config and returns the server's name and the users file of its local backend,
/// failing before any password prompt when the server has none.
fn users_file(args: &ServerArgs) -> anyhow::Result<(String, PathBuf, Dispatcher)> {
    let config = load_config(&args.config)?;
    let (server, path) = Files::new(&args.config)
        .users_file(&args.server)
        .map_err(api_error)?;
    let dispatcher = Dispatcher::connect(&args.config, &config)?;
    Ok((server, path, dispatcher))
}

/// Reads the new password from standard input or the terminal and checks its length. The
/// request carries it to the daemon or the files, where it is hashed with argon2.
fn read_password(args: &PasswordArgs) -> anyhow::Result<Zeroizing<String>> {
    let password = if args.password_stdin {
        read_stdin_password(&mut std::io::stdin().lock())?
    } else {
        read_terminal_password(&args.user.name)?
    };
    check_new_password(&password).map_err(api_error)?;
    Ok(password)
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
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password(&"x".repeat(127)).is_ok());
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("").is_err());
        assert!(check_new_password(&"x".repeat(128)).is_err());
        let token_shaped = format!("sslvpn-session-{}", "A".repeat(43));
        assert!(check_new_password(&token_shaped).is_err());
    }
}
