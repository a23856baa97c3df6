//! Business context: which account had a case open for which customer.
//!
//! Read from CSV `case_id,customer_id,account,opened,closed` (EVENTS.md
//! section 4). `closed` may be empty for a case still open.

use rustc_hash::FxHashMap as HashMap;
use std::path::Path;
use vakt_event::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("{path}: cannot read the cases file: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Bad {
        path: String,
        line: u64,
        message: String,
    },
}

/// A lookup is often made just before the case is logged: a case opened
/// within this of a read covers it.
pub const SLACK: i64 = vakt_event::time::HOUR;

/// When a case was open: from, until.
type Intervals = Vec<(Timestamp, Timestamp)>;

/// Open intervals per account, then customer.
#[derive(Debug, Default)]
pub struct Cases {
    open: HashMap<Box<str>, HashMap<Box<str>, Intervals>>,
    count: usize,
}

impl Cases {
    pub fn load(path: &Path) -> Result<Cases, CasesError> {
        let file = std::fs::File::open(path).map_err(|source| CasesError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_reader(file, &path.display().to_string())
    }

    pub fn from_reader(r: impl std::io::Read, path: &str) -> Result<Cases, CasesError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(r);
        let mut cases = Cases::default();
        for (i, rec) in rdr.records().enumerate() {
            let line = i as u64 + 1;
            let bad = |message: String| CasesError::Bad {
                path: path.to_owned(),
                line,
                message,
            };
            let rec = rec.map_err(|e| bad(format!("not CSV: {e}")))?;
            if line == 1 && rec.get(0) == Some("case_id") {
                continue;
            }
            if rec.len() < 4 {
                return Err(bad(format!(
                    "expected case_id,customer_id,account,opened,closed; found {} columns",
                    rec.len()
                )));
            }
            let opened = Timestamp::parse(&rec[3]).map_err(|e| bad(format!("opened: {e}")))?;
            let closed = match rec.get(4) {
                None | Some("") => Timestamp(i64::MAX),
                Some(c) => Timestamp::parse(c).map_err(|e| bad(format!("closed: {e}")))?,
            };
            if closed < opened {
                return Err(bad("closed is before opened".into()));
            }
            cases
                .open
                .entry(rec[2].into())
                .or_default()
                .entry(rec[1].into())
                .or_default()
                .push((opened, closed));
            cases.count += 1;
        }
        Ok(cases)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn intervals(&self, account: &str, customer: &str) -> &[(Timestamp, Timestamp)] {
        self.open
            .get(account)
            .and_then(|m| m.get(customer))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether `account` had a case for `customer` open at `at`.
    pub fn covers(&self, account: &str, customer: &str, at: Timestamp) -> bool {
        self.intervals(account, customer)
            .iter()
            .any(|(o, c)| at.0 >= o.0 - SLACK && at.0 <= c.0.saturating_add(SLACK))
    }

    /// When `account` logged a case for `customer` after a read at `at`
    /// that [`Cases::covers`] did not cover: the earliest `opened` within
    /// `within` of the read. A read is justified from then on.
    pub fn logged_after(
        &self,
        account: &str,
        customer: &str,
        at: Timestamp,
        within: i64,
    ) -> Option<Timestamp> {
        self.intervals(account, customer)
            .iter()
            .map(|(o, _)| *o)
            .filter(|o| o.0 > at.0 && o.0 - at.0 <= within)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_their_window_for_their_account_only() {
        let csv = "case_id,customer_id,account,opened,closed\nK-1,C-7,cc.eva,2026-11-02T08:00:00Z,2026-11-02T12:00:00Z\nK-2,C-8,cc.eva,2026-11-03T08:00:00Z,\n";
        let c = Cases::from_reader(csv.as_bytes(), "cases.csv").unwrap();
        assert_eq!(c.len(), 2);
        let t = |s| Timestamp::parse(s).unwrap();
        assert!(c.covers("cc.eva", "C-7", t("2026-11-02T09:00:00Z")));
        assert!(!c.covers("cc.eva", "C-7", t("2026-11-03T09:00:00Z")));
        assert!(!c.covers("cc.bob", "C-7", t("2026-11-02T09:00:00Z")));
        assert!(c.covers("cc.eva", "C-8", t("2026-12-24T09:00:00Z")));
    }

    #[test]
    fn a_case_logged_after_the_read_is_found_within_the_grace_only() {
        let csv = "K-1,C-7,cc.eva,2026-11-02T11:00:00Z,\n";
        let c = Cases::from_reader(csv.as_bytes(), "cases.csv").unwrap();
        let t = |s| Timestamp::parse(s).unwrap();
        let read = t("2026-11-02T08:00:00Z");
        assert!(!c.covers("cc.eva", "C-7", read));
        let h = vakt_event::time::HOUR;
        assert_eq!(
            c.logged_after("cc.eva", "C-7", read, 4 * h),
            Some(t("2026-11-02T11:00:00Z"))
        );
        assert_eq!(c.logged_after("cc.eva", "C-7", read, 2 * h), None);
        assert_eq!(c.logged_after("cc.bob", "C-7", read, 4 * h), None);
    }

    #[test]
    fn bad_rows_are_located() {
        let csv = "K-1,C-7,cc.eva,2026-11-02T08:00:00Z,\nK-2,C-8,cc.eva,tomorrow,\n";
        let e = Cases::from_reader(csv.as_bytes(), "cases.csv").unwrap_err();
        assert!(e.to_string().starts_with("cases.csv:2: opened"), "{e}");
    }
}
