//! Who may call what on the local socket.
//!
//! kioskd reads each caller's credentials from the socket (`SO_PEERCRED`:
//! uid, gid, pid) and gives it a [`Role`]: root and kioskd's own user are
//! technicians, members of `api.technician_groups` too; members of
//! `api.customer_groups` are the customer UI; everyone else who can open
//! the socket (mode 0660, group `api.group`) is read-only.

use std::collections::BTreeSet;

use kiosk_proto::Request;

use crate::Error;
use crate::config::ApiSection;

/// A caller's rights, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Status, lists, audit check, (masked) events.
    ReadOnly,
    /// The customer UI: also sessions, tickets, card reads.
    Customer,
    /// A branch technician: everything, each call audited.
    Technician,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read_only",
            Role::Customer => "customer",
            Role::Technician => "technician",
        }
    }
}

/// The role a request needs.
pub fn required_role(request: &Request) -> Role {
    match request {
        Request::Hello
        | Request::Status
        | Request::Readers
        | Request::Subscribe
        | Request::SyncStatus
        | Request::SyncList(_)
        | Request::SyncRejected
        | Request::AuditVerify
        | Request::QueueServices
        | Request::QueueStatus
        | Request::QueueReport(_) => Role::ReadOnly,
        Request::ReadCard(_)
        | Request::QueueTake(_)
        | Request::QueueReprint(_)
        | Request::SessionStart(_)
        | Request::SessionInput(_)
        | Request::SessionCancel
        | Request::SessionState
        | Request::TechnicianUnlock(_)
        | Request::TechnicianLock => Role::Customer,
        Request::SyncRetry(_)
        | Request::QueueCall(_)
        | Request::SubmitChange(_)
        | Request::Selftest(_) => Role::Technician,
    }
}

/// A connected client, from its socket credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub role: Role,
}

/// The groups and users behind the roles, resolved at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    own_uid: u32,
    technician_gids: BTreeSet<u32>,
    customer_gids: BTreeSet<u32>,
}

impl Policy {
    /// Resolve `api.technician_groups` and `api.customer_groups`; a group
    /// that does not exist is an error naming its key.
    pub fn from_config(api: &ApiSection) -> Result<Policy, Error> {
        Ok(Policy {
            own_uid: nix::unistd::getuid().as_raw(),
            technician_gids: gids("api.technician_groups", &api.technician_groups)?,
            customer_gids: gids("api.customer_groups", &api.customer_groups)?,
        })
    }

    /// The role of a caller with this uid, primary gid and supplementary groups.
    pub fn role(&self, uid: u32, gid: u32, groups: &[u32]) -> Role {
        let member =
            |set: &BTreeSet<u32>| set.contains(&gid) || groups.iter().any(|g| set.contains(g));
        if uid == 0 || uid == self.own_uid || member(&self.technician_gids) {
            Role::Technician
        } else if member(&self.customer_gids) {
            Role::Customer
        } else {
            Role::ReadOnly
        }
    }

    /// The caller on the other end of `stream`; read-only if its
    /// credentials cannot be read.
    pub fn caller(&self, stream: &tokio::net::UnixStream) -> Caller {
        match stream.peer_cred() {
            Ok(cred) => {
                let groups = cred.pid().map(supplementary_groups).unwrap_or_default();
                Caller {
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid: cred.pid(),
                    role: self.role(cred.uid(), cred.gid(), &groups),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the caller's credentials; read-only");
                Caller {
                    uid: u32::MAX,
                    gid: u32::MAX,
                    pid: None,
                    role: Role::ReadOnly,
                }
            }
        }
    }
}

/// The gid of `api.group`, if set; an error naming the key if it does not exist.
pub fn socket_gid(api: &ApiSection) -> Result<Option<u32>, Error> {
    match &api.group {
        None => Ok(None),
        Some(name) => gid("api.group", name).map(Some),
    }
}

fn gid(key: &'static str, name: &str) -> Result<u32, Error> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(Error::NoSuchGroup {
            key,
            group: name.to_owned(),
        }),
    }
}

fn gids(key: &'static str, names: &[String]) -> Result<BTreeSet<u32>, Error> {
    names.iter().map(|n| gid(key, n)).collect()
}

/// The supplementary groups of a process (`Groups:` in /proc/PID/status);
/// empty if they cannot be read.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|g| {
                    g.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_credentials() {
        let p = Policy {
            own_uid: 900,
            technician_gids: [50].into(),
            customer_gids: [60].into(),
        };
        assert_eq!(p.role(0, 1, &[]), Role::Technician);
        assert_eq!(p.role(900, 1, &[]), Role::Technician);
        assert_eq!(p.role(1000, 50, &[]), Role::Technician);
        assert_eq!(p.role(1000, 1, &[60, 50]), Role::Technician);
        assert_eq!(p.role(1000, 60, &[]), Role::Customer);
        assert_eq!(p.role(1000, 1, &[2]), Role::ReadOnly);
    }

    #[test]
    fn methods_need_their_roles() {
        use kiosk_proto::{ChangeIdParams, QueueServiceParams};
        assert_eq!(required_role(&Request::Status), Role::ReadOnly);
        assert_eq!(required_role(&Request::Subscribe), Role::ReadOnly);
        assert_eq!(required_role(&Request::SessionCancel), Role::Customer);
        assert_eq!(
            required_role(&Request::SyncRetry(ChangeIdParams {
                change_id: "x".into()
            })),
            Role::Technician
        );
        assert_eq!(
            required_role(&Request::QueueCall(QueueServiceParams {
                service: "a".into()
            })),
            Role::Technician
        );
    }

    #[test]
    fn a_missing_group_names_its_key() {
        let api = ApiSection {
            group: Some("no-such-group-kiosk-test".into()),
            ..ApiSection::default()
        };
        let e = socket_gid(&api).expect_err("missing group");
        assert!(e.to_string().starts_with("api.group:"), "{e}");
        let api = ApiSection {
            technician_groups: vec!["no-such-group-kiosk-test".into()],
            ..ApiSection::default()
        };
        let e = Policy::from_config(&api).expect_err("missing group");
        assert!(e.to_string().starts_with("api.technician_groups:"), "{e}");
    }
}
