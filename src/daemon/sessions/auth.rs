//! Authentication decisions: revocation, `max_connections`, replacement of an older session
//! with the same common name or from the same UDP address, address leases, and the identity
//! check after renegotiation.

use std::time::Instant;

use tracing::{debug, info};

use crate::proto::keymethod::Secret;
use crate::proto::session::{AuthRequest, Authorization, CloseKind};

use super::super::credentials::normalize_serial;
use super::super::driven::DrivenSession;
use super::two_factor::Screening;
use super::{Client, ConnId, Io, Sessions};

impl<S: DrivenSession> Sessions<S> {
    /// Decides on a client that passed TLS, or queues its password check first on a
    /// two-factor server.
    pub(super) fn authenticate(
        &mut self,
        io: &mut impl Io,
        conn: ConnId,
        mut request: AuthRequest,
        now: Instant,
    ) {
        let decision = match self.screen_credentials(conn, &mut request, now) {
            Screening::Queued => {
                if let Some(entry) = self.entries.get_mut(&conn) {
                    entry.awaiting = Some(request);
                }
                return;
            }
            Screening::Rejected { logged, sent } => {
                self.log_rejected(conn, &request, &logged);
                Authorization::Reject(sent)
            }
            Screening::NotRequired => {
                let decision = self.decide(io, conn, &request, now);
                if let Authorization::Reject(reason) = &decision {
                    self.log_rejected(conn, &request, reason);
                }
                decision
            }
        };
        if let Some(entry) = self.entries.get_mut(&conn) {
            entry.session.authorize(decision, now);
        }
    }

    /// Checks revocation and `max_connections`, replaces an older session with the same
    /// common name or from the same UDP address, and leases an address.
    pub(super) fn decide(
        &mut self,
        io: &mut impl Io,
        conn: ConnId,
        request: &AuthRequest,
        now: Instant,
    ) -> Authorization {
        let Some(entry) = self.entries.get(&conn) else {
            return Authorization::Reject("session closed".to_owned());
        };
        if let Some(client) = &entry.client {
            return Authorization::Accept(client.network.clone());
        }

        let serial = normalize_serial(&request.serial_hex);
        if self.revoked.contains(&serial) {
            let reason = format!("certificate serial {} is revoked", request.serial_hex);
            return Authorization::Reject(reason);
        }

        // A new session from the address of a running one takes over only now, when it has
        // authenticated. It does so before it takes a tunnel address and a connection slot,
        // so a restarted client gets its address back even on a full server.
        self.take_over_address(io, conn, now);

        if let Some(&old) = self.by_name.get(&request.common_name)
            && old != conn
        {
            info!(common_name = %request.common_name, "a new connection replaces the previous one");
            let reason = "replaced by a new connection with the same common name";
            self.close_session(io, old, CloseKind::Drop, reason, now);
        }

        if !self.admission.try_admit() {
            let max = self.admission.max();
            return Authorization::Reject(format!("server is full: max_connections {max} reached"));
        }
        let Some(network) = self.pool.allocate(&request.common_name) else {
            self.admission.release();
            let reason = format!("no free tunnel address in client_cidr {}", self.client_cidr);
            return Authorization::Reject(reason);
        };

        let Some(entry) = self.entries.get_mut(&conn) else {
            self.pool.release(network.address);
            self.admission.release();
            return Authorization::Reject("session closed".to_owned());
        };
        entry.client = Some(Client {
            common_name: request.common_name.clone(),
            serial,
            network: network.clone(),
            cipher: None,
            username: None,
            auth_token: None,
            connected_since: std::time::SystemTime::now(),
        });
        self.handshaking = self.handshaking.saturating_sub(1);
        self.by_address.insert(network.address, conn);
        self.by_name.insert(request.common_name.clone(), conn);
        io.authenticated(entry.link);
        Authorization::Accept(network)
    }

    pub(super) fn established(&mut self, conn: ConnId, cipher: String) {
        let Some(entry) = self.entries.get_mut(&conn) else {
            return;
        };
        let Some(client) = &mut entry.client else {
            debug!(remote = %entry.link.remote, "session established without authentication");
            return;
        };
        info!(
            common_name = %client.common_name,
            username = ?client.username.as_deref().unwrap_or(""),
            real_address = %entry.link.remote,
            virtual_address = %client.network.address,
            %cipher,
            connections = self.admission.active(),
            "client connected"
        );
        client.cipher = Some(cipher);
        self.counters.handshakes += 1;
    }

    /// Rechecks the identity a renegotiation proved: a changed common name, a revoked
    /// serial or, on a two-factor server, a wrong session token ends the session.
    pub(super) fn renegotiated(
        &mut self,
        conn: ConnId,
        common_name: String,
        serial_hex: &str,
        username: Option<String>,
        password: Option<Secret>,
        now: Instant,
    ) {
        let serial = normalize_serial(serial_hex);
        let revoked = self.revoked.contains(&serial);
        let token_check = self.check_session_token(conn, username.as_deref(), password.as_ref());
        let Some(entry) = self.entries.get_mut(&conn) else {
            return;
        };
        let Some(client) = &mut entry.client else {
            return;
        };
        let reason = if client.common_name != common_name {
            format!(
                "common name changed from {:?} to {common_name:?} in a renegotiation",
                client.common_name
            )
        } else if revoked {
            format!("certificate serial {serial_hex} is revoked")
        } else if let Err(reason) = token_check {
            reason
        } else {
            info!(%common_name, "data channel key renegotiated");
            client.serial = serial;
            return;
        };
        info!(common_name = %client.common_name, %reason, "closing the connection");
        entry.close_reason.get_or_insert(reason.clone());
        entry.session.close(CloseKind::Revoke(reason), now);
    }
}
