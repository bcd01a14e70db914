//! Username and password checks of a two-factor SSL server, and the session token checks of
//! its renegotiations.
//!
//! The table never waits for a backend. A client that passes the quick checks (credentials
//! present, username matching the common name if required, not throttled) becomes a
//! [`PasswordCheck`] that the server task runs in a task of its own. The verdict comes back as
//! a [`CheckResult`] through [`Sessions::finish_password_check`], which accepts or rejects the
//! session that is still waiting for it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::auth::throttle::{Attempt, Throttle};
use crate::auth::token::{SessionToken, looks_like_token};
use crate::auth::{CredentialCheck, Verdict};
use crate::config::SslServer;
use crate::proto::keymethod::Secret;
use crate::proto::session::{AuthRequest, Authorization, CloseKind};

use super::super::credentials::normalize_serial;
use super::super::driven::DrivenSession;
use super::{ConnId, Io, Sessions};

/// The message a client gets for wrong credentials; the log has the reason.
const WRONG_CREDENTIALS: &str = "username or password is incorrect";

/// The two-factor settings and state of one SSL server's session table.
#[derive(Debug)]
pub(crate) struct TwoFactor {
    server: String,
    username_must_match_cn: bool,
    throttle: Throttle,
    checks: Vec<PasswordCheck>,
}

impl TwoFactor {
    /// Returns the two-factor state of `server`, or None when it checks certificates only.
    pub(crate) fn for_server(server: &SslServer) -> Option<Self> {
        let auth = server.auth.as_ref().filter(|_| server.two_factor)?;
        Some(Self {
            server: server.name.clone(),
            username_must_match_cn: auth.username_must_match_cn,
            throttle: Throttle::new(
                auth.max_failures,
                Duration::from_secs(u64::from(auth.lockout_seconds)),
            ),
            checks: Vec::new(),
        })
    }
}

/// A check for the server task to run: the credentials of the session `conn`.
#[derive(Debug)]
pub(crate) struct PasswordCheck {
    pub(crate) conn: ConnId,
    pub(crate) credentials: CredentialCheck,
}

/// The verdict of a [`PasswordCheck`], with what the throttle needs.
#[derive(Debug)]
pub(crate) struct CheckResult {
    pub(crate) conn: ConnId,
    pub(crate) address: IpAddr,
    pub(crate) username: String,
    pub(crate) verdict: Verdict,
}

impl PasswordCheck {
    /// Returns the result of this check with `verdict`.
    pub(crate) fn result(&self, verdict: Verdict) -> CheckResult {
        CheckResult {
            conn: self.conn,
            address: self.credentials.client.ip(),
            username: self.credentials.username.clone(),
            verdict,
        }
    }
}

/// The outcome of the quick checks of a new client.
pub(super) enum Screening {
    /// Certificates only, or a certificate the table rejects anyway (revoked).
    NotRequired,
    /// Rejected: the reason for the log and the one sent to the client.
    Rejected { logged: String, sent: String },
    /// A password check is queued; the session waits for its verdict.
    Queued,
}

impl<S: DrivenSession> Sessions<S> {
    /// Runs the quick checks of a new client's credentials and queues the password check.
    pub(super) fn screen_credentials(
        &mut self,
        conn: ConnId,
        request: &mut AuthRequest,
        now: Instant,
    ) -> Screening {
        let Some(entry) = self.entries.get(&conn) else {
            return Screening::NotRequired;
        };
        let Some(two_factor) = &mut self.two_factor else {
            return Screening::NotRequired;
        };
        if entry.client.is_some()
            || self
                .revoked
                .contains(&normalize_serial(&request.serial_hex))
        {
            return Screening::NotRequired;
        }
        let reject = |logged: String, sent: &str| Screening::Rejected {
            logged,
            sent: sent.to_owned(),
        };
        let (Some(username), Some(password)) = (request.username.clone(), request.password.take())
        else {
            return reject(
                "no username and password sent; the profile needs auth-user-pass".to_owned(),
                "username and password required",
            );
        };
        if two_factor.username_must_match_cn && username != request.common_name {
            return reject(
                format!(
                    "username {username:?} differs from the certificate common name {:?}",
                    request.common_name
                ),
                "username does not match the certificate",
            );
        }
        if looks_like_token(password.expose()) {
            // A reconnecting client sends the token of its previous session. OpenVPN drops
            // the token on this AUTH_FAILED and retries with the password.
            return reject(
                "sent the session token of an earlier session".to_owned(),
                "session token expired",
            );
        }
        let address = entry.link.remote.ip();
        if let Err(locked) = two_factor.throttle.begin(address, &username, now) {
            return reject(
                locked.to_string(),
                "too many failed logins; try again later",
            );
        }
        two_factor.checks.push(PasswordCheck {
            conn,
            credentials: CredentialCheck {
                username,
                password,
                common_name: request.common_name.clone(),
                serial_hex: request.serial_hex.clone(),
                server: two_factor.server.clone(),
                client: entry.link.remote,
            },
        });
        Screening::Queued
    }

    /// Takes the password checks queued since the last call.
    pub(crate) fn take_password_checks(&mut self) -> Vec<PasswordCheck> {
        match &mut self.two_factor {
            Some(two_factor) => std::mem::take(&mut two_factor.checks),
            None => Vec::new(),
        }
    }

    /// Accepts or rejects the session waiting for `result`.
    pub(crate) fn finish_password_check(
        &mut self,
        io: &mut impl Io,
        result: CheckResult,
        now: Instant,
    ) {
        let attempt = match &result.verdict {
            Verdict::Accepted => Attempt::Succeeded,
            Verdict::Denied(_) => Attempt::Failed,
            Verdict::Unavailable(_) => Attempt::Undecided,
        };
        if let Some(two_factor) = &mut self.two_factor {
            two_factor
                .throttle
                .finish(result.address, &result.username, attempt, now);
        }
        let Some(request) = self
            .entries
            .get_mut(&result.conn)
            .and_then(|entry| entry.awaiting.take())
        else {
            debug!(
                username = ?result.username,
                "password check finished after its session ended"
            );
            return;
        };
        let decision = match result.verdict {
            Verdict::Accepted => self.accept_login(io, result.conn, &request, now),
            Verdict::Denied(reason) => {
                self.log_rejected(result.conn, &request, &reason);
                Authorization::Reject(WRONG_CREDENTIALS.to_owned())
            }
            Verdict::Unavailable(reason) => {
                if let Some(entry) = self.entries.get(&result.conn) {
                    warn!(
                        common_name = %request.common_name,
                        username = ?result.username,
                        real_address = %entry.link.remote,
                        %reason,
                        "client rejected: the identity backend could not check the password"
                    );
                }
                Authorization::Reject("authentication service unavailable".to_owned())
            }
        };
        if let Some(entry) = self.entries.get_mut(&result.conn) {
            entry.session.authorize(decision, now);
        }
        self.drain(io, result.conn, now);
    }

    /// Runs the certificate-side decision for a client whose password was accepted and hands
    /// an accepted session its token.
    fn accept_login(
        &mut self,
        io: &mut impl Io,
        conn: ConnId,
        request: &AuthRequest,
        now: Instant,
    ) -> Authorization {
        let token = match SessionToken::generate() {
            Ok(token) => token,
            Err(error) => {
                let reason = format!("cannot create a session token: {error}");
                self.log_rejected(conn, request, &reason);
                return Authorization::Reject("internal server error".to_owned());
            }
        };
        let decision = self.decide(io, conn, request, now);
        let Some(entry) = self.entries.get_mut(&conn) else {
            return decision;
        };
        match &decision {
            Authorization::Accept(_) => {
                entry.session.set_auth_token(token.secret().clone());
                if let Some(client) = &mut entry.client {
                    client.username = request.username.clone();
                    client.auth_token = Some(token);
                }
            }
            Authorization::Reject(reason) => self.log_rejected(conn, request, reason),
        }
        decision
    }

    /// Counts and logs a refused client.
    pub(super) fn log_rejected(&mut self, conn: ConnId, request: &AuthRequest, reason: &str) {
        self.counters.auth_failures += 1;
        let Some(entry) = self.entries.get(&conn) else {
            return;
        };
        // The username comes from the client, so it is logged quoted with control characters
        // escaped.
        info!(
            common_name = %request.common_name,
            username = ?request.username.as_deref().unwrap_or(""),
            real_address = %entry.link.remote,
            %reason,
            "client rejected"
        );
    }

    /// Checks the credentials of a renegotiation of an accepted two-factor client: the same
    /// username, and its session token as the password. Returns why they fail.
    pub(super) fn check_session_token(
        &self,
        conn: ConnId,
        username: Option<&str>,
        password: Option<&Secret>,
    ) -> Result<(), String> {
        let Some(client) = self
            .entries
            .get(&conn)
            .and_then(|entry| entry.client.as_ref())
        else {
            return Ok(());
        };
        let Some(token) = &client.auth_token else {
            return Ok(());
        };
        if username != client.username.as_deref() {
            return Err(format!(
                "renegotiation sent username {:?}, not {:?}",
                username.unwrap_or(""),
                client.username.as_deref().unwrap_or("")
            ));
        }
        match password {
            Some(password) if token.matches(password.expose()) => Ok(()),
            Some(_) => Err("renegotiation sent a wrong session token".to_owned()),
            None => Err("renegotiation sent no session token".to_owned()),
        }
    }

    /// Ends the sessions of clients whose username `exists` no longer accepts, after their
    /// user was removed from the users file.
    pub(crate) fn close_removed_users(
        &mut self,
        io: &mut impl Io,
        exists: impl Fn(&str) -> bool,
        now: Instant,
    ) {
        let removed: Vec<(ConnId, String)> = self
            .entries
            .iter()
            .filter_map(|(&conn, entry)| {
                let username = entry.client.as_ref()?.username.as_ref()?;
                (!exists(username)).then(|| (conn, username.clone()))
            })
            .collect();
        for (conn, username) in removed {
            info!(?username, "closing the connection of a removed user");
            let kind = CloseKind::Revoke("user removed".to_owned());
            self.close_session(io, conn, kind, "user removed", now);
        }
    }

    /// Forgets throttle records whose failures have left the window.
    pub(crate) fn prune_throttle(&mut self, now: Instant) {
        if let Some(two_factor) = &mut self.two_factor {
            two_factor.throttle.prune(now);
        }
    }
}

#[cfg(test)]
mod tests;
