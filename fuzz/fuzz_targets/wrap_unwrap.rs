//! tls-auth and tls-crypt with a fixed key. Arbitrary wire bytes must be rejected without a
//! panic, and packets sealed by the client side must open to the same bytes exactly once.
//! Any changed byte must fail authentication, and the replay window must match a model.

#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sslvpn::proto::wrap::{
    Digest, KeyDirection, ReplayId, ReplayWindow, Role, STATIC_KEY_LEN, StaticKey, WrapConfig,
    WrapError,
};

#[derive(Arbitrary, Debug)]
enum Step {
    /// Bytes straight from the network.
    Raw(Vec<u8>),
    /// A packet protected by the client side, optionally with one byte changed.
    Sealed {
        set_counter: Option<u32>,
        now_unix: u32,
        plain: Vec<u8>,
        change: Option<(u16, u8)>,
    },
    /// The last sealed packet again.
    Replay,
    /// A replay id checked against a standalone window and the model.
    Window { counter: u32, time: u32 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    protection: u8,
    steps: Vec<Step>,
}

fn key() -> Arc<StaticKey> {
    let mut bytes = [0; STATIC_KEY_LEN];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(31).wrapping_add(5);
    }
    Arc::new(StaticKey::from_bytes(bytes))
}

/// Server and client configurations of one protection.
fn configs(choice: u8) -> (WrapConfig, WrapConfig) {
    let key = key();
    let digests = [Digest::Sha1, Digest::Sha256, Digest::Sha512];
    match choice % 8 {
        0 => (WrapConfig::None, WrapConfig::None),
        1 => (
            WrapConfig::TlsCrypt {
                key: key.clone(),
                role: Role::Server,
            },
            WrapConfig::TlsCrypt {
                key,
                role: Role::Client,
            },
        ),
        n => {
            let digest = digests[usize::from(n - 2) % 3];
            let (server, client) = if n >= 5 {
                (KeyDirection::Bidirectional, KeyDirection::Bidirectional)
            } else {
                (KeyDirection::Normal, KeyDirection::Inverse)
            };
            let config = |direction| WrapConfig::TlsAuth {
                key: key.clone(),
                digest,
                direction,
            };
            (config(server), config(client))
        }
    }
}

/// The replay window's rules, kept as plainly as possible.
#[derive(Default)]
struct WindowModel {
    newest: Option<ReplayId>,
    seen: BTreeSet<u32>,
}

impl WindowModel {
    fn check_and_record(&mut self, id: ReplayId) -> bool {
        if id.counter == 0 {
            return false;
        }
        let accept = match self.newest {
            None => true,
            Some(newest) if id.time > newest.time => true,
            Some(newest) if id.time < newest.time => false,
            Some(newest) if id.counter > newest.counter => true,
            Some(newest) => newest.counter - id.counter < 64 && !self.seen.contains(&id.counter),
        };
        if !accept {
            return false;
        }
        match self.newest {
            Some(newest) if newest.time == id.time => {
                self.seen.insert(id.counter);
                if id.counter > newest.counter {
                    self.newest = Some(id);
                }
            }
            _ => {
                self.seen = BTreeSet::from([id.counter]);
                self.newest = Some(id);
            }
        }
        true
    }
}

fuzz_target!(|input: Input| {
    let (server_config, client_config) = configs(input.protection);
    let is_none = matches!(server_config, WrapConfig::None);
    let mut server = server_config.build().expect("server protection");
    let mut client = client_config.build().expect("client protection");
    let mut window = ReplayWindow::default();
    let mut model = WindowModel::default();
    let mut last_sealed: Option<Vec<u8>> = None;

    for step in input.steps {
        match step {
            Step::Raw(wire) => {
                let _ = server.open(&wire, &mut Vec::new());
                let mut out = vec![0xee];
                let result = server.unwrap(&wire, &mut out);
                if is_none {
                    assert_eq!(result.is_ok(), wire.len() >= 9);
                }
                match result {
                    Ok(_) => assert!(out.len() > 1, "unwrap appended nothing"),
                    Err(_) => assert_eq!(out, [0xee], "a failed unwrap changed the output"),
                }
            }
            Step::Sealed {
                set_counter,
                now_unix,
                plain,
                change,
            } => {
                if let Some(counter) = set_counter {
                    client.set_send_counter(counter);
                }
                let mut wire = Vec::new();
                if client.wrap(&plain, now_unix, &mut wire).is_err() {
                    assert!(wire.is_empty(), "a failed wrap appended bytes");
                    continue;
                }
                assert_eq!(wire.len(), plain.len() + client.overhead());
                let changed = match change {
                    Some((at, mask)) if mask != 0 && !wire.is_empty() => {
                        let at = usize::from(at) % wire.len();
                        wire[at] ^= mask;
                        true
                    }
                    _ => false,
                };
                let mut out = Vec::new();
                let result = server.unwrap(&wire, &mut out);
                if changed && !is_none {
                    assert!(
                        matches!(result, Err(WrapError::AuthenticationFailed(_))),
                        "changed packet: {result:?}"
                    );
                    continue;
                }
                match result {
                    Ok(_) if is_none => assert_eq!(out, wire),
                    Ok(_) => assert_eq!(out, plain),
                    Err(WrapError::Replay { .. }) => assert!(!is_none),
                    Err(error) => panic!("sealed packet rejected: {error}"),
                }
                last_sealed = Some(wire);
            }
            Step::Replay => {
                if let Some(wire) = &last_sealed {
                    let result = server.unwrap(wire, &mut Vec::new());
                    if !is_none {
                        assert!(
                            matches!(result, Err(WrapError::Replay { .. })),
                            "replayed packet: {result:?}"
                        );
                    }
                }
            }
            Step::Window { counter, time } => {
                let id = ReplayId { counter, time };
                let accepted = window.check_and_record(id).is_ok();
                assert_eq!(
                    accepted,
                    model.check_and_record(id),
                    "replay window for {id:?}"
                );
            }
        }
    }
});
