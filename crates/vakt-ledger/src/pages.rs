//! The payment pages' inventory (PCI DSS 6.4.3): every script version
//! and destination each page was seen with, first and last seen, and the
//! headers of its last check (11.6.1 compares the next one with them).
//! Rows are chained as actions like decisions, so an inventory edited
//! outside vakt (a script slipped in as if it had always been there)
//! fails `vakt ledger verify`. Script contents are kept by their SHA-384,
//! which is their own check, for the summary of a later change.

use crate::ledger::Ledger;
use crate::Result;
use rusqlite::{params, OptionalExtension};
use vakt_event::page::{
    origin_of, Inventory, KnownDestination, KnownScript, LastCheck, PageSnapshot, SENDING_KINDS,
    SOURCE_LIMIT,
};
use vakt_event::Timestamp;

/// Created at open, like the other tables; old data directories get it then.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS page_scripts(
    key TEXT PRIMARY KEY, page TEXT NOT NULL, url TEXT NOT NULL, inline INTEGER NOT NULL,
    sha384 TEXT NOT NULL, bytes INTEGER NOT NULL, loaded_by TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS page_scripts_page ON page_scripts(page);
CREATE TABLE IF NOT EXISTS page_destinations(
    key TEXT PRIMARY KEY, page TEXT NOT NULL, origin TEXT NOT NULL, kinds TEXT NOT NULL,
    initiator TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS page_destinations_page ON page_destinations(page);
CREATE TABLE IF NOT EXISTS page_states(
    page TEXT PRIMARY KEY, final_url TEXT NOT NULL, csp TEXT, csp_report_only TEXT,
    sri TEXT NOT NULL, checked_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS script_bodies(sha384 TEXT PRIMARY KEY, body TEXT NOT NULL);
";

const SCRIPT_COLUMNS: &str = crate::actions::PAGE_SCRIPTS.columns;
const DESTINATION_COLUMNS: &str = crate::actions::PAGE_DESTINATIONS.columns;
const STATE_COLUMNS: &str = crate::actions::PAGE_STATES.columns;

/// Versions of one script whose contents are kept.
pub const BODIES_KEPT: usize = 3;

fn script(r: &rusqlite::Row) -> rusqlite::Result<KnownScript> {
    Ok(KnownScript {
        page: r.get(1)?,
        url: r.get(2)?,
        inline: r.get::<_, i64>(3)? != 0,
        sha384: r.get(4)?,
        bytes: r.get::<_, i64>(5)?.max(0) as u64,
        loaded_by: r.get(6)?,
        first_seen: Timestamp(r.get(7)?),
        last_seen: Timestamp(r.get(8)?),
    })
}

fn destination(r: &rusqlite::Row) -> rusqlite::Result<KnownDestination> {
    Ok(KnownDestination {
        page: r.get(1)?,
        origin: r.get(2)?,
        kinds: r.get(3)?,
        initiator: r.get(4)?,
        first_seen: Timestamp(r.get(5)?),
        last_seen: Timestamp(r.get(6)?),
    })
}

impl Ledger {
    /// What is known of `page` (its configured URL).
    pub fn page_inventory(&self, page: &str) -> Result<Inventory> {
        let scripts = self.page_rows(
            &format!("SELECT {SCRIPT_COLUMNS} FROM page_scripts WHERE page = ?1 ORDER BY first_seen, key"),
            Some(page),
            script,
        )?;
        let destinations = self.page_rows(
            &format!("SELECT {DESTINATION_COLUMNS} FROM page_destinations WHERE page = ?1 ORDER BY first_seen, key"),
            Some(page),
            destination,
        )?;
        let r = self
            .conn
            .query_row(
                &format!("SELECT {STATE_COLUMNS} FROM page_states WHERE page = ?1"),
                [page],
                |r| {
                    let sri: String = r.get(4)?;
                    Ok(LastCheck {
                        final_url: r.get(1)?,
                        csp: r.get(2)?,
                        csp_report_only: r.get(3)?,
                        sri: serde_json::from_str(&sri).unwrap_or_default(),
                        checked_at: Timestamp(r.get(5)?),
                    })
                },
            )
            .optional();
        let last = self.db(r)?;
        Ok(Inventory {
            scripts,
            destinations,
            last,
        })
    }

    /// Every page's scripts, by page then first seen (the 6.4.3 inventory).
    pub fn page_scripts(&self) -> Result<Vec<KnownScript>> {
        self.page_rows(
            &format!("SELECT {SCRIPT_COLUMNS} FROM page_scripts ORDER BY page, first_seen, key"),
            None,
            script,
        )
    }

    /// Every page's destinations, by page then first seen.
    pub fn page_destinations(&self) -> Result<Vec<KnownDestination>> {
        self.page_rows(
            &format!(
                "SELECT {DESTINATION_COLUMNS} FROM page_destinations ORDER BY page, first_seen, key"
            ),
            None,
            destination,
        )
    }

    fn page_rows<T>(
        &self,
        sql: &str,
        page: Option<&str>,
        row: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let r = self.conn.prepare(sql).and_then(|mut s| match page {
            Some(p) => s.query_map([p], row)?.collect(),
            None => s.query_map([], row)?.collect(),
        });
        self.db(r)
    }

    /// A script's content by its SHA-384, when it was kept.
    pub fn script_body(&self, sha384: &str) -> Result<Option<String>> {
        let r = self
            .conn
            .query_row(
                "SELECT body FROM script_bodies WHERE sha384 = ?1",
                [sha384],
                |r| r.get(0),
            )
            .optional();
        self.db(r)
    }

    /// Records a successful check of `page` into its inventory, in one
    /// transaction: each script version and destination (first seen kept,
    /// last seen moved on), the script contents, and the page's headers.
    pub fn record_page_check(&mut self, page: &str, snap: &PageSnapshot) -> Result<()> {
        let at = snap.checked_at.0;
        self.chained(|l| {
            for s in &snap.scripts {
                let key = format!("{page}\n{}\n{}", s.url, s.sha384);
                let r = l.conn.execute(
                    &format!(
                        "INSERT INTO page_scripts({SCRIPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                         ON CONFLICT(key) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)"
                    ),
                    params![key, page, s.url, s.inline as i64, s.sha384, s.bytes as i64, s.loaded_by, at],
                );
                l.db(r)?;
                l.record_put(&crate::actions::PAGE_SCRIPTS, &key)?;
                if let Some(body) = s.source.as_deref().filter(|b| b.len() <= SOURCE_LIMIT) {
                    let r = l.conn.execute(
                        "INSERT OR IGNORE INTO script_bodies(sha384, body) VALUES (?1, ?2)",
                        params![s.sha384, body],
                    );
                    l.db(r)?;
                }
            }
            let mut seen: Vec<(String, Vec<&str>, &str)> = Vec::new();
            for q in snap.requests.iter().filter(|q| SENDING_KINDS.contains(&q.kind.as_str())) {
                let origin = origin_of(&q.url);
                match seen.iter_mut().find(|(o, _, _)| *o == origin) {
                    Some((_, kinds, _)) if !kinds.contains(&q.kind.as_str()) => kinds.push(&q.kind),
                    Some(_) => {}
                    None => seen.push((origin, vec![q.kind.as_str()], q.initiator.as_str())),
                }
            }
            for (origin, mut kinds, initiator) in seen {
                let key = format!("{page}\n{origin}");
                let known: Option<String> = l.db(
                    l.conn
                        .query_row(
                            "SELECT kinds FROM page_destinations WHERE key = ?1",
                            [&key],
                            |r| r.get(0),
                        )
                        .optional(),
                )?;
                let old: Vec<&str> = known.as_deref().map(|k| k.split(',').collect()).unwrap_or_default();
                kinds.extend(old.iter().copied());
                kinds.sort_unstable();
                kinds.dedup();
                let r = l.conn.execute(
                    &format!(
                        "INSERT INTO page_destinations({DESTINATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                         ON CONFLICT(key) DO UPDATE SET kinds = excluded.kinds, last_seen = max(last_seen, excluded.last_seen)"
                    ),
                    params![key, page, origin, kinds.join(","), initiator, at],
                );
                l.db(r)?;
                l.record_put(&crate::actions::PAGE_DESTINATIONS, &key)?;
            }
            let sri: Vec<(String, String)> = snap
                .script_tags
                .iter()
                .filter_map(|t| Some((t.src.clone()?, t.integrity.clone()?)))
                .collect();
            let r = l.conn.execute(
                &format!(
                    "INSERT INTO page_states({STATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(page) DO UPDATE SET final_url = excluded.final_url, csp = excluded.csp,
                     csp_report_only = excluded.csp_report_only, sri = excluded.sri, checked_at = excluded.checked_at"
                ),
                params![
                    page,
                    snap.final_url,
                    snap.csp,
                    snap.csp_report_only,
                    serde_json::to_string(&sri).unwrap_or_else(|_| "[]".into()),
                    at
                ],
            );
            l.db(r)?;
            // Contents are for summarising the next change: the newest
            // versions of each script are enough, and a script that changes
            // on every load must not grow the data directory by its size
            // each check.
            let r = l.conn.execute(
                &format!(
                    "DELETE FROM script_bodies WHERE sha384 NOT IN (
                       SELECT sha384 FROM (SELECT sha384, ROW_NUMBER() OVER (PARTITION BY page, url ORDER BY last_seen DESC) AS n FROM page_scripts)
                       WHERE n <= {BODIES_KEPT})"
                ),
                [],
            );
            l.db(r)?;
            l.record_put(&crate::actions::PAGE_STATES, page)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;
    use vakt_event::page::{RequestSeen, ScriptSeen, ScriptTag};

    fn snap(at: i64, sha: &str) -> PageSnapshot {
        PageSnapshot {
            url: "https://shop.example/pay".into(),
            final_url: "https://shop.example/pay".into(),
            status: Some(200),
            checked_at: Timestamp(at),
            scripts: vec![ScriptSeen {
                url: "https://chat.vendor.example/w.js".into(),
                sha384: sha.into(),
                bytes: 10,
                loaded_by: "page".into(),
                source: Some(format!("body {sha}")),
                ..Default::default()
            }],
            requests: vec![
                RequestSeen {
                    url: "https://px.example/p.gif?a=1".into(),
                    method: "GET".into(),
                    kind: "image".into(),
                    initiator: "page".into(),
                    ..Default::default()
                },
                RequestSeen {
                    url: "https://px.example/b".into(),
                    method: "POST".into(),
                    kind: "beacon".into(),
                    initiator: "page".into(),
                    ..Default::default()
                },
                RequestSeen {
                    url: "https://cdn.example/x.js".into(),
                    method: "GET".into(),
                    kind: "script".into(),
                    initiator: "page".into(),
                    ..Default::default()
                },
            ],
            script_tags: vec![ScriptTag {
                src: Some("https://shop.example/app.js".into()),
                integrity: Some("sha384-abc".into()),
            }],
            csp: Some("script-src 'self'".into()),
            ..Default::default()
        }
    }

    #[test]
    fn checks_build_the_inventory_and_verify_holds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("data"),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let page = "https://shop.example/pay";
        assert_eq!(l.page_inventory(page).unwrap(), Inventory::default());
        l.record_page_check(page, &snap(1_000, "sha384-one"))
            .unwrap();
        l.record_page_check(page, &snap(2_000, "sha384-one"))
            .unwrap();
        l.record_page_check(page, &snap(3_000, "sha384-two"))
            .unwrap();
        let inv = l.page_inventory(page).unwrap();
        assert_eq!(inv.scripts.len(), 2, "one row per version");
        assert_eq!(
            (inv.scripts[0].first_seen, inv.scripts[0].last_seen),
            (Timestamp(1_000), Timestamp(2_000))
        );
        assert_eq!(
            inv.known()
                .latest("https://chat.vendor.example/w.js")
                .unwrap()
                .sha384,
            "sha384-two"
        );
        assert_eq!(
            inv.destinations.len(),
            1,
            "a script load is not a destination"
        );
        assert_eq!(inv.destinations[0].kinds, "beacon,image");
        let last = inv.last.unwrap();
        assert_eq!(
            last.sri,
            [(
                "https://shop.example/app.js".to_string(),
                "sha384-abc".to_string()
            )]
        );
        assert_eq!(
            l.script_body("sha384-one").unwrap().as_deref(),
            Some("body sha384-one")
        );
        for (i, sha) in ["sha384-3", "sha384-4", "sha384-5"].iter().enumerate() {
            l.record_page_check(page, &snap(4_000 + i as i64, sha))
                .unwrap();
        }
        assert_eq!(
            l.script_body("sha384-one").unwrap(),
            None,
            "only the newest versions keep their content"
        );
        assert!(l.script_body("sha384-5").unwrap().is_some());
        assert_eq!(
            l.page_inventory(page).unwrap().scripts.len(),
            5,
            "the inventory keeps every version"
        );
        l.close().unwrap();

        let report = crate::verify::verify(&dir).unwrap();
        assert_eq!(report.problem, None);
        let conn = rusqlite::Connection::open(dir.db_path()).unwrap();
        conn.execute(
            "INSERT INTO page_scripts VALUES ('planted', ?1, 'https://evil.example/s.js', 0, 'sha384-x', 1, 'page', 0, 0)",
            [page],
        )
        .unwrap();
        drop(conn);
        let report = crate::verify::verify(&dir).unwrap();
        let problem = report.problem.expect("a planted script is found");
        assert!(problem.to_string().contains("inventory"), "{problem}");
    }
}
