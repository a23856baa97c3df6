//! TOTP secrets for step-up authentication (RFC 6238), one per account,
//! kept in the data directory beside the decisions that demand them.

use crate::ledger::Ledger;
use crate::Result;
use rusqlite::{params, OptionalExtension};
use vakt_event::Timestamp;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS totp(account TEXT PRIMARY KEY, secret TEXT NOT NULL, created INTEGER NOT NULL)";

impl Ledger {
    /// Enrols (or replaces) an account's TOTP secret, base32 as authenticator apps take it.
    pub fn set_totp_secret(&mut self, account: &str, secret: &str, at: Timestamp) -> Result<()> {
        let r = self.conn.execute_batch(TABLE).and_then(|()| {
            self.conn.execute(
                "INSERT OR REPLACE INTO totp(account, secret, created) VALUES (?1, ?2, ?3)",
                params![account, secret, at.0],
            )
        });
        self.db(r).map(|_| ())
    }

    /// The account's TOTP secret, if it has enrolled.
    pub fn totp_secret(&self, account: &str) -> Result<Option<String>> {
        let r = self.conn.execute_batch(TABLE).and_then(|()| {
            self.conn
                .query_row(
                    "SELECT secret FROM totp WHERE account = ?1",
                    [account],
                    |r| r.get(0),
                )
                .optional()
        });
        self.db(r)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DataDir, Ledger};
    use vakt_event::Timestamp;

    #[test]
    fn secrets_are_kept_per_account_and_replaced_on_reenrolment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("d"),
        };
        let mut l = Ledger::open(&dir).unwrap();
        assert_eq!(l.totp_secret("anna").unwrap(), None);
        l.set_totp_secret("anna", "AAAA", Timestamp(1)).unwrap();
        l.set_totp_secret("anna", "BBBB", Timestamp(2)).unwrap();
        l.close().unwrap();
        let r = Ledger::open_read(&dir).unwrap();
        assert_eq!(r.totp_secret("anna").unwrap().as_deref(), Some("BBBB"));
        assert_eq!(r.totp_secret("bo").unwrap(), None);
    }
}
