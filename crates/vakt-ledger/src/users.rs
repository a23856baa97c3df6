//! Console users: names with argon2 password hashes (never the passwords),
//! each with a [`ConsoleRole`].
//!
//! The `role` column came later: a users table made before it is given
//! one with `DEFAULT 'admin'` the first time the table is used, so people
//! added then keep the powers they had (every console user could do
//! everything). Users added since name their role; [`Ledger::add_user`]
//! gives the least, `viewer`.

use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::OptionalExtension;
use serde::Serialize;
use vakt_event::Timestamp;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER NOT NULL, role TEXT NOT NULL DEFAULT 'viewer')";

/// Adds the role to a users table made before roles existed: everyone
/// there was an admin in all but name.
const ADD_ROLE: &str = "ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'";

/// What a console user may do; each role may do all the one below it may.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRole {
    /// Read alerts, incidents, decisions, canaries, exposure, and the
    /// scope of an alert as counts (not the customers in it).
    Viewer,
    /// Viewer, and the scope's customers, breach report drafts, and
    /// adding and extending decisions.
    Analyst,
    /// Analyst, and lifting decisions: anything that undoes enforcement.
    Admin,
}

impl ConsoleRole {
    pub const ALL: [ConsoleRole; 3] = [
        ConsoleRole::Viewer,
        ConsoleRole::Analyst,
        ConsoleRole::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::Viewer => "viewer",
            ConsoleRole::Analyst => "analyst",
            ConsoleRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<ConsoleRole> {
        ConsoleRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: ConsoleRole) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for ConsoleRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so `vakt user list` can align it.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for ConsoleRole {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<ConsoleRole> {
        ConsoleRole::parse(s).ok_or_else(|| {
            LedgerError::Invalid(format!(
                "`{}` is not a console role; use viewer, analyst or admin",
                s.escape_debug()
            ))
        })
    }
}

/// The role stored for `name`; an unknown one (written by hand) is an
/// error, so it grants nothing.
pub(crate) fn role_of(name: &str, stored: &str) -> Result<ConsoleRole> {
    ConsoleRole::parse(stored).ok_or_else(|| {
        LedgerError::Invalid(format!(
            "user {name} has the unknown role `{}`; set one with `vakt user role {name} viewer|analyst|admin`",
            stored.escape_debug()
        ))
    })
}

/// Shortest password `add_user` accepts.
pub const MIN_PASSWORD: usize = 8;

/// A console user as listed: never the hash.
#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    pub name: String,
    pub role: ConsoleRole,
    pub created: Timestamp,
}

/// Longest password taken, in bytes: hashing a megabyte costs as much as
/// a thousand sign-ins.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Whether `name` may be a user's name (1 to 64 letters, digits, `._-@`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

impl Ledger {
    /// Makes the users table, or gives an older one its `role` column.
    pub(crate) fn users_table(&self) -> Result<()> {
        let r = self.conn.execute_batch(SCHEMA);
        self.db(r)?;
        if self.users_have_roles()? {
            return Ok(());
        }
        let r = self.conn.execute_batch(ADD_ROLE);
        // Another connection may have added it first.
        match r {
            Err(_) if self.users_have_roles()? => Ok(()),
            r => self.db(r),
        }
    }

    fn users_have_roles(&self) -> Result<bool> {
        let r = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM pragma_table_info('users') WHERE name = 'role'")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)));
        Ok(self.db(r)? > 0)
    }

    /// Adds a viewer: the least a console user may be.
    pub fn add_user(&mut self, name: &str, password: &str) -> Result<()> {
        self.add_user_as(name, password, ConsoleRole::Viewer)
    }

    /// Adds a user with `role` and an argon2 hash (default parameters) of
    /// `password`.
    pub fn add_user_as(&mut self, name: &str, password: &str, role: ConsoleRole) -> Result<()> {
        if !valid_name(name) {
            return Err(LedgerError::Invalid(format!(
                "user name `{}` is not allowed; use up to 64 letters, digits, `.`, `_`, `-` or `@`",
                name.escape_debug()
            )));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(LedgerError::Invalid(format!(
                "the password is longer than {MAX_PASSWORD_BYTES} bytes; choose a shorter one"
            )));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(LedgerError::Invalid(format!(
                "the password is shorter than {MIN_PASSWORD} characters; choose a longer one"
            )));
        }
        self.users_table()?;
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| LedgerError::Invalid(format!("cannot hash the password: {e}")))?
            .to_string();
        // The row and its action in one transaction: on a shared store it
        // is published before it commits, or not made at all.
        self.chained(|l| {
            let r = l.conn.execute(
                "INSERT INTO users(name, hash, created, role) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name) DO NOTHING",
                rusqlite::params![name, hash, Timestamp::now().0, role.as_str()],
            );
            if l.db(r)? == 0 {
                return Err(LedgerError::Invalid(format!(
                    "user {name} exists; `vakt user delete {name}` first to replace it"
                )));
            }
            l.record_put(&crate::actions::USERS, name)
        })
    }

    /// Whether `password` is `name`'s. An unknown name costs the same
    /// hashing work as a known one.
    pub fn verify_user(&self, name: &str, password: &str) -> Result<bool> {
        let stored = self.user_hash(name)?;
        Ok(check_password(stored.as_deref(), password))
    }

    /// The stored hash of `name`'s password: a quick look-up, so a server
    /// can run [`check_password`]'s slow hashing without holding the
    /// connection others wait for.
    pub fn user_hash(&self, name: &str) -> Result<Option<String>> {
        self.users_table()?;
        let r = self
            .conn
            .query_row("SELECT hash FROM users WHERE name = ?1", [name], |r| {
                r.get::<_, String>(0)
            })
            .optional();
        self.db(r)
    }

    /// The users, by name.
    pub fn list_users(&self) -> Result<Vec<UserInfo>> {
        self.users_table()?;
        let r = self
            .conn
            .prepare("SELECT name, created, role FROM users ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            });
        self.db(r)?
            .into_iter()
            .map(|(name, created, role)| {
                Ok(UserInfo {
                    role: role_of(&name, &role)?,
                    name,
                    created: Timestamp(created),
                })
            })
            .collect()
    }

    /// Gives `name` the role `role`; returns whether there is such a user.
    /// Their sessions read it at their next request.
    pub fn set_user_role(&mut self, name: &str, role: ConsoleRole) -> Result<bool> {
        self.users_table()?;
        self.chained(|l| {
            let r = l.conn.execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                rusqlite::params![name, role.as_str()],
            );
            if l.db(r)? == 0 {
                return Ok(false);
            }
            // A role is a power: chained, so a role raised by hand is found by verify.
            l.record_put(&crate::actions::USERS, name)?;
            Ok(true)
        })
    }

    /// Deletes a user and ends their console sessions; returns whether
    /// there was one.
    pub fn delete_user(&mut self, name: &str) -> Result<bool> {
        self.users_table()?;
        self.sessions_table()?;
        self.end_sessions_of(name)?;
        self.chained(|l| {
            let r = l.conn.execute("DELETE FROM users WHERE name = ?1", [name]);
            let deleted = l.db(r)? > 0;
            if deleted {
                l.record_delete(&crate::actions::USERS, name)?;
            }
            Ok(deleted)
        })
    }
}

/// A hash of a random password, verified against when the user is unknown.
/// Whether `password` matches the argon2 hash `stored`. `None` (an unknown
/// user) costs the same work and is never a match; so is a password over
/// [`MAX_PASSWORD_BYTES`], refused before any hashing.
pub fn check_password(stored: Option<&str>, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let known = stored.is_some();
    let dummy;
    let hash = match stored {
        Some(h) => h,
        None => {
            dummy = dummy_hash();
            &dummy
        }
    };
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    known && ok
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(salt.as_str().as_bytes(), &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    #[test]
    fn users_are_added_verified_listed_and_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        l.add_user("anna", "correct horse").unwrap();
        assert!(l.add_user("anna", "another one").is_err());
        assert!(l.add_user("bo", "short").is_err());
        assert!(l.add_user("bad name", "long enough").is_err());
        l.close().unwrap();
        let mut l = Ledger::open_read(&dir).unwrap();
        assert!(l.verify_user("anna", "correct horse").unwrap());
        assert!(!l.verify_user("anna", "correct horsE").unwrap());
        assert!(!l.verify_user("nobody", "correct horse").unwrap());
        let list = l.list_users().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "anna");
        assert_eq!(
            list[0].role,
            ConsoleRole::Viewer,
            "the least role by default"
        );
        let db = std::fs::read(dir.db_path()).unwrap();
        assert!(!db.windows(13).any(|w| w == b"correct horse"));
        assert!(l.delete_user("anna").unwrap());
        assert!(!l.delete_user("anna").unwrap());
        assert!(!l.verify_user("anna", "correct horse").unwrap());
    }

    #[test]
    fn roles_are_given_listed_changed_and_ordered() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        l.add_user_as("ada", "correct horse", ConsoleRole::Admin)
            .unwrap();
        l.add_user_as("bo", "correct horse", ConsoleRole::Analyst)
            .unwrap();
        assert!(l.set_user_role("bo", ConsoleRole::Viewer).unwrap());
        assert!(!l.set_user_role("nobody", ConsoleRole::Admin).unwrap());
        let roles: Vec<_> = l
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.role))
            .collect();
        assert_eq!(
            roles,
            [
                ("ada".to_owned(), ConsoleRole::Admin),
                ("bo".to_owned(), ConsoleRole::Viewer)
            ]
        );
        use ConsoleRole::*;
        assert!(Admin.allows(Analyst) && Analyst.allows(Viewer) && Viewer.allows(Viewer));
        assert!(!Viewer.allows(Analyst) && !Analyst.allows(Admin));
        assert_eq!("analyst".parse::<ConsoleRole>().unwrap(), Analyst);
        assert_eq!(format!("[{Admin:<7}]"), "[admin  ]");
        let e = "root".parse::<ConsoleRole>().unwrap_err().to_string();
        assert!(e.contains("use viewer, analyst or admin"), "{e}");
    }

    /// Finding 18: a data directory from before roles keeps working, and
    /// the people in it keep the powers they had.
    #[test]
    fn finding_18_an_old_users_table_is_given_roles_with_everyone_admin() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let l = Ledger::open(&dir).unwrap();
        l.conn
            .execute_batch(
                "DROP TABLE IF EXISTS users; \
                 CREATE TABLE users(name TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER NOT NULL); \
                 INSERT INTO users VALUES ('old', 'not-a-hash', 1), ('older', 'not-a-hash', 2);",
            )
            .unwrap();
        l.close().unwrap();
        let mut l = Ledger::open(&dir).unwrap();
        let roles: Vec<_> = l
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.role, u.created))
            .collect();
        assert_eq!(
            roles,
            [
                ("old".to_owned(), ConsoleRole::Admin, Timestamp(1)),
                ("older".to_owned(), ConsoleRole::Admin, Timestamp(2))
            ]
        );
        // Upgraded once: a second look and a new user go as they should.
        assert!(l.users_have_roles().unwrap());
        l.users_table().unwrap();
        l.add_user("new", "correct horse").unwrap();
        assert!(l.set_user_role("older", ConsoleRole::Analyst).unwrap());
        l.close().unwrap();
        let l = Ledger::open_read(&dir).unwrap();
        let roles: Vec<_> = l
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| u.role)
            .collect();
        use ConsoleRole::*;
        assert_eq!(roles, [Viewer, Admin, Analyst]);
    }
}
