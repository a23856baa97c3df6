//! Console sessions, kept in the database so a restart of `vakt serve`
//! does not sign anyone out. Only a BLAKE3 hash of each session id is
//! stored, so a copy of the database cannot be used to sign in, and a
//! session ends with its user (`vakt user delete`). A session does not
//! keep its user's role: each look-up reads it, so `vakt user role`
//! applies at the next request.
//!
//! On a shared PostgreSQL store the sessions are in `vakt.sessions`, so a
//! browser signed in on one node is signed in on every node behind the
//! same address; the user and role are read from the data directory, which
//! every node keeps in step ([`crate::shared_records`]).

use crate::ledger::Ledger;
use crate::shared::Shared;
use crate::store::postgres::{from_text, pg, to_text};
use crate::users::{role_of, ConsoleRole};
use crate::Result;
use rusqlite::{params, OptionalExtension};
use vakt_event::Timestamp;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions(\
    id_hash BLOB PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, expires INTEGER NOT NULL)";

/// A signed-in session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub expires: Timestamp,
}

/// A session as found: with its user's role as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveSession {
    pub session: SessionInfo,
    pub role: ConsoleRole,
}

fn hash(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

impl Ledger {
    pub(crate) fn sessions_table(&self) -> Result<()> {
        let r = self.conn.execute_batch(SCHEMA);
        self.db(r)
    }

    /// Records a session under `id` (a secret only the browser keeps) and
    /// forgets sessions that expired before `now`.
    pub fn start_session(&mut self, id: &str, session: &SessionInfo, now: Timestamp) -> Result<()> {
        if let Some(shared) = &self.shared {
            return shared.start_session(&hash(id), session, now);
        }
        self.sessions_table()?;
        let r = self
            .conn
            .execute("DELETE FROM sessions WHERE expires <= ?1", [now.0]);
        self.db(r)?;
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO sessions(id_hash, user, csrf, expires) VALUES (?1, ?2, ?3, ?4)",
            params![&hash(id)[..], session.user, session.csrf, session.expires.0],
        );
        self.db(r).map(|_| ())
    }

    /// The session `id` names, when it has not expired at `now` and its
    /// user still exists, with that user's role.
    pub fn session(&self, id: &str, now: Timestamp) -> Result<Option<ActiveSession>> {
        self.sessions_table()?;
        self.users_table()?;
        if let Some(shared) = &self.shared {
            let Some(session) = shared.session(&hash(id), now)? else {
                return Ok(None);
            };
            let r = self
                .conn
                .prepare_cached("SELECT role FROM users WHERE name = ?1")
                .and_then(|mut s| {
                    s.query_row([&session.user], |r| r.get::<_, String>(0))
                        .optional()
                });
            let Some(role) = self.db(r)? else {
                return Ok(None);
            };
            let role = role_of(&session.user, &role)?;
            return Ok(Some(ActiveSession { session, role }));
        }
        let r = self
            .conn
            .prepare_cached(
                "SELECT s.user, s.csrf, s.expires, u.role FROM sessions s JOIN users u ON u.name = s.user \
                 WHERE s.id_hash = ?1 AND s.expires > ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![&hash(id)[..], now.0], |r| {
                    let session = SessionInfo {
                        user: r.get(0)?,
                        csrf: r.get(1)?,
                        expires: Timestamp(r.get(2)?),
                    };
                    Ok((session, r.get::<_, String>(3)?))
                })
                .optional()
            });
        let Some((session, role)) = self.db(r)? else {
            return Ok(None);
        };
        let role = role_of(&session.user, &role)?;
        Ok(Some(ActiveSession { session, role }))
    }

    /// Ends the session `id` (signing out).
    pub fn end_session(&mut self, id: &str) -> Result<()> {
        if let Some(shared) = &self.shared {
            return shared.end_session(&hash(id));
        }
        self.sessions_table()?;
        let r = self
            .conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [&hash(id)[..]]);
        self.db(r).map(|_| ())
    }
}

impl Ledger {
    /// Ends every session of `user` (deleted), here and in the shared store.
    pub(crate) fn end_sessions_of(&mut self, user: &str) -> Result<()> {
        self.sessions_table()?;
        let r = self
            .conn
            .execute("DELETE FROM sessions WHERE user = ?1", [user]);
        self.db(r)?;
        match &self.shared {
            Some(shared) => shared.end_sessions_of(user),
            None => Ok(()),
        }
    }
}

impl Shared {
    fn start_session(&self, id_hash: &[u8; 32], s: &SessionInfo, now: Timestamp) -> Result<()> {
        self.client()?.with(|c| {
            let mut tx = c.transaction().map_err(pg("starting a session"))?;
            tx.execute("DELETE FROM vakt.sessions WHERE expires <= $1", &[&now.0])
                .map_err(pg("forgetting expired sessions"))?;
            tx.execute(
                "INSERT INTO vakt.sessions(id_hash, \"user\", csrf, expires) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id_hash) DO UPDATE SET \"user\" = excluded.\"user\", csrf = excluded.csrf, expires = excluded.expires",
                &[&&id_hash[..], &to_text(&s.user), &to_text(&s.csrf), &s.expires.0],
            )
            .map_err(pg("starting a session"))?;
            tx.commit().map_err(pg("starting a session"))
        })
    }

    fn session(&self, id_hash: &[u8; 32], now: Timestamp) -> Result<Option<SessionInfo>> {
        let row = self
            .client()?
            .with(|c| {
                c.query_opt(
                    "SELECT \"user\", csrf, expires FROM vakt.sessions WHERE id_hash = $1 AND expires > $2",
                    &[&&id_hash[..], &now.0],
                )
            })
            .map_err(pg("reading a session"))?;
        Ok(row.map(|r| SessionInfo {
            user: from_text(r.get(0)),
            csrf: from_text(r.get(1)),
            expires: Timestamp(r.get(2)),
        }))
    }

    fn end_session(&self, id_hash: &[u8; 32]) -> Result<()> {
        self.client()?
            .with(|c| {
                c.execute(
                    "DELETE FROM vakt.sessions WHERE id_hash = $1",
                    &[&&id_hash[..]],
                )
            })
            .map_err(pg("ending a session"))?;
        Ok(())
    }

    fn end_sessions_of(&self, user: &str) -> Result<()> {
        self.client()?
            .with(|c| {
                c.execute(
                    "DELETE FROM vakt.sessions WHERE \"user\" = $1",
                    &[&to_text(user)],
                )
            })
            .map_err(pg("ending a user's sessions"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    #[test]
    fn sessions_outlive_a_reopen_but_not_their_expiry_or_their_user() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        l.add_user("anna", "correct horse").unwrap();
        l.close().unwrap();
        let mut l = Ledger::open_read(&dir).unwrap();
        let s = SessionInfo {
            user: "anna".into(),
            csrf: "c5rf".into(),
            expires: Timestamp(2_000),
        };
        l.start_session("secret-id", &s, Timestamp(1_000)).unwrap();
        drop(l);

        let mut l = Ledger::open_read(&dir).unwrap();
        assert_eq!(
            l.session("secret-id", Timestamp(1_500)).unwrap(),
            Some(ActiveSession {
                session: s.clone(),
                role: ConsoleRole::Viewer
            })
        );
        assert_eq!(l.session("other-id", Timestamp(1_500)).unwrap(), None);
        assert_eq!(l.session("secret-id", Timestamp(2_000)).unwrap(), None);
        let db = std::fs::read(dir.db_path()).unwrap();
        assert!(!db.windows(9).any(|w| w == b"secret-id"));

        l.end_session("secret-id").unwrap();
        assert_eq!(l.session("secret-id", Timestamp(1_500)).unwrap(), None);

        // Deleting the user ends the session for good, even if the name comes back.
        l.start_session("second-id", &s, Timestamp(1_000)).unwrap();
        assert!(l.session("second-id", Timestamp(1_500)).unwrap().is_some());
        assert!(l.delete_user("anna").unwrap());
        assert_eq!(l.session("second-id", Timestamp(1_500)).unwrap(), None);
        l.add_user("anna", "correct horse").unwrap();
        assert_eq!(l.session("second-id", Timestamp(1_500)).unwrap(), None);
    }

    #[test]
    fn a_session_reads_its_users_role_at_each_look_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        l.add_user_as("bo", "correct horse", ConsoleRole::Analyst)
            .unwrap();
        l.close().unwrap();
        let mut l = Ledger::open_read(&dir).unwrap();
        let s = SessionInfo {
            user: "bo".into(),
            csrf: "c5rf".into(),
            expires: Timestamp(2_000),
        };
        l.start_session("bo-id", &s, Timestamp(1_000)).unwrap();
        let role = |l: &Ledger| l.session("bo-id", Timestamp(1_500)).unwrap().unwrap().role;
        assert_eq!(role(&l), ConsoleRole::Analyst);
        assert!(l.set_user_role("bo", ConsoleRole::Viewer).unwrap());
        assert_eq!(role(&l), ConsoleRole::Viewer);
        // A role nobody can name grants nothing: no session.
        l.conn
            .execute("UPDATE users SET role = 'root' WHERE name = 'bo'", [])
            .unwrap();
        assert!(l.session("bo-id", Timestamp(1_500)).is_err());
    }
}
