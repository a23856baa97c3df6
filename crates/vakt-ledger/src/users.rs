//! Console users: names with argon2 password hashes (never the passwords).

use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::OptionalExtension;
use serde::Serialize;
use vakt_event::Timestamp;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER NOT NULL)";

/// Shortest password `add_user` accepts.
pub const MIN_PASSWORD: usize = 8;

/// A console user as listed: never the hash.
#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    pub name: String,
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
    pub(crate) fn users_table(&self) -> Result<()> {
        let r = self.conn.execute_batch(SCHEMA);
        self.db(r)
    }

    /// Adds a user with an argon2 hash (default parameters) of `password`.
    pub fn add_user(&mut self, name: &str, password: &str) -> Result<()> {
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
        let r = self.conn.execute(
            "INSERT INTO users(name, hash, created) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            rusqlite::params![name, hash, Timestamp::now().0],
        );
        if self.db(r)? == 0 {
            return Err(LedgerError::Invalid(format!(
                "user {name} exists; `vakt user delete {name}` first to replace it"
            )));
        }
        self.chain_put(&crate::actions::USERS, name)
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
            .prepare("SELECT name, created FROM users ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(UserInfo {
                        name: r.get(0)?,
                        created: Timestamp(r.get(1)?),
                    })
                })?
                .collect()
            });
        self.db(r)
    }

    /// Deletes a user and ends their console sessions; returns whether
    /// there was one.
    pub fn delete_user(&mut self, name: &str) -> Result<bool> {
        self.users_table()?;
        self.sessions_table()?;
        let r = self
            .conn
            .execute("DELETE FROM sessions WHERE user = ?1", [name]);
        self.db(r)?;
        let r = self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", [name]);
        let deleted = self.db(r)? > 0;
        if deleted {
            self.chain_delete(&crate::actions::USERS, name)?;
        }
        Ok(deleted)
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
        let db = std::fs::read(dir.db_path()).unwrap();
        assert!(!db.windows(13).any(|w| w == b"correct horse"));
        assert!(l.delete_user("anna").unwrap());
        assert!(!l.delete_user("anna").unwrap());
        assert!(!l.verify_user("anna", "correct horse").unwrap());
    }
}
