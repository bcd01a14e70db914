//! Runs the `sslvpn` binary as a CLI command and checks its exit status.

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `sslvpn --log-level error <args> --config <config>` in the config file's folder, with
/// `stdin` written to its standard input, and returns its output.
pub fn run(config: &Path, args: &[&str], stdin: &str) -> Output {
    let folder = config.parent().expect("the config file is in a folder");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sslvpn"));
    command
        .args(["--log-level", "error"])
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(folder);
    run_with_input(&mut command, stdin)
}

/// Runs `command` with `stdin` written to its standard input and returns its output.
pub fn run_with_input(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sslvpn");
    // A command that rejects its arguments exits before it reads stdin, so a broken pipe here
    // is an outcome to check, not a failure.
    match child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
    {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::BrokenPipe => {}
        Err(error) => panic!("writing to sslvpn's stdin: {error}"),
    }
    child.wait_with_output().expect("wait for sslvpn")
}

/// Runs `sslvpn` as [`run`] does, asserts that it succeeds and returns its standard output.
pub fn expect_success(config: &Path, args: &[&str], stdin: &str) -> String {
    success_stdout(args, run(config, args, stdin))
}

/// Runs `sslvpn` as [`run`] does, asserts that it fails and returns its standard error.
pub fn expect_failure(config: &Path, args: &[&str], stdin: &str) -> String {
    let output = run(config, args, stdin);
    assert!(
        !output.status.success(),
        "sslvpn {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).expect("UTF-8 output")
}

/// Asserts that `output`, of `sslvpn <args>`, shows success and returns its standard output.
pub fn success_stdout(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "sslvpn {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
