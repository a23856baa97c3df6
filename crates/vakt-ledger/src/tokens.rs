//! API tokens for `vakt serve`: a name, a role, and the BLAKE3 hash of a
//! secret that is shown once when the token is made and never stored.
//!
//! Roles: `ingest` may only post events; `read` may read decisions and
//! alerts; `analyst` may read and also work incidents (status, owner,
//! classification, notes); `admin` may do all that and add or lift
//! decisions.

use crate::keys::hex;
use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use vakt_event::Timestamp;

/// What a token may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Post events, nothing else.
    Ingest,
    /// Read decisions and alerts.
    Read,
    /// Read, and work incidents.
    Analyst,
    /// Analyst, and add or lift decisions.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Read, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a token of this role may do what `needed` allows: admin
    /// implies analyst, analyst implies read; ingest is ingest only.
    pub fn allows(self, needed: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Ingest => None,
            Role::Read => Some(0),
            Role::Analyst => Some(1),
            Role::Admin => Some(2),
        };
        self == needed || matches!((rank(self), rank(needed)), (Some(a), Some(b)) if a >= b)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created: Timestamp,
}

/// Prefix of every secret, so a leaked one is easy to recognise in a scan.
pub const SECRET_PREFIX: &str = "vakt_";

fn hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

fn role_of(name: &str, stored: &str) -> Result<Role> {
    Role::parse(stored).ok_or_else(|| {
        LedgerError::Invalid(format!(
            "token {name} has the unknown role `{stored}`; revoke it and create it again"
        ))
    })
}

impl Ledger {
    /// Makes a token and returns its secret, which is shown this once:
    /// only its hash is kept. Names are unique; revoke a name to reuse it.
    pub fn create_token(&mut self, name: &str, role: Role) -> Result<String> {
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(LedgerError::Invalid(format!(
                "token name `{}` must be a non-empty word without spaces, e.g. proxy-1",
                name.escape_debug()
            )));
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{SECRET_PREFIX}{}", hex(&bytes));
        self.chained(|l| {
            let r = l.conn.execute(
                "INSERT INTO tokens(name, role, hash, created) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name) DO NOTHING",
                params![name, role.as_str(), &hash(&secret)[..], Timestamp::now().0],
            );
            if l.db(r)? == 0 {
                return Err(LedgerError::Invalid(format!(
                    "a token named {name} exists; `vakt token revoke {name}` first, or choose another name"
                )));
            }
            l.record_put(&crate::actions::TOKENS, name)
        })?;
        Ok(secret)
    }

    /// The token a secret belongs to, if any.
    pub fn token(&self, secret: &str) -> Result<Option<TokenInfo>> {
        // Only well-formed secrets are looked up; the hash comparison is
        // done by the database's index, so no timing of the secret leaks.
        if !secret.starts_with(SECRET_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let r = self
            .conn
            .prepare_cached("SELECT name, role, created FROM tokens WHERE hash = ?1")
            .and_then(|mut s| {
                s.query_row([&hash(secret)[..]], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()
            });
        match self.db(r)? {
            Some((name, role, created)) => Ok(Some(TokenInfo {
                role: role_of(&name, &role)?,
                name,
                created: Timestamp(created),
            })),
            None => Ok(None),
        }
    }

    /// The role of the token a secret belongs to, if any.
    pub fn token_role(&self, secret: &str) -> Result<Option<Role>> {
        Ok(self.token(secret)?.map(|t| t.role))
    }

    /// Every token, by name.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let r = self
            .conn
            .prepare("SELECT name, role, created FROM tokens ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            });
        self.db(r)?
            .into_iter()
            .map(|(name, role, created)| {
                Ok(TokenInfo {
                    role: role_of(&name, &role)?,
                    name,
                    created: Timestamp(created),
                })
            })
            .collect()
    }

    /// Revokes a token, chained as an action; whether it existed.
    pub fn revoke_token(&mut self, name: &str) -> Result<bool> {
        self.chained(|l| {
            let r = l.conn.execute("DELETE FROM tokens WHERE name = ?1", [name]);
            let found = l.db(r)? > 0;
            if found {
                l.record_delete(&crate::actions::TOKENS, name)?;
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    #[test]
    fn a_token_is_found_by_its_secret_only_until_revoked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("d"),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let admin = l.create_token("ops", Role::Admin).unwrap();
        let ingest = l.create_token("proxy-1", Role::Ingest).unwrap();
        assert!(admin.starts_with("vakt_") && admin.len() == 5 + 64);
        assert_ne!(admin, ingest);
        assert!(l.create_token("ops", Role::Read).is_err());
        assert!(l.create_token("two words", Role::Read).is_err());
        l.close().unwrap();

        let mut l = Ledger::open_read(&dir).unwrap();
        assert_eq!(l.token_role(&admin).unwrap(), Some(Role::Admin));
        assert_eq!(l.token_role(&ingest).unwrap(), Some(Role::Ingest));
        assert_eq!(l.token_role("vakt_00").unwrap(), None);
        assert_eq!(l.token_role("").unwrap(), None);
        let names: Vec<_> = l
            .list_tokens()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["ops", "proxy-1"]);
        // Nothing in the database holds the secret itself.
        let stored: Vec<u8> = l
            .conn
            .query_row("SELECT hash FROM tokens WHERE name = 'ops'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_ne!(stored, admin.as_bytes());
        assert!(l.revoke_token("ops").unwrap());
        assert!(!l.revoke_token("ops").unwrap());
        assert_eq!(l.token_role(&admin).unwrap(), None);
    }

    #[test]
    fn admin_implies_read_and_ingest_is_ingest_only() {
        assert!(Role::Admin.allows(Role::Read));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(!Role::Admin.allows(Role::Ingest));
        assert!(!Role::Read.allows(Role::Admin));
        assert!(!Role::Ingest.allows(Role::Read));
        assert!(Role::Ingest.allows(Role::Ingest));
        assert_eq!(Role::parse("read"), Some(Role::Read));
        assert_eq!(Role::parse("root"), None);
    }
}
