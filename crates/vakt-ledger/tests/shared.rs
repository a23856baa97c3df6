//! Data directories on one shared PostgreSQL store (a throwaway cluster on
//! loopback): the store's transaction is a batch's commit point, so a
//! node that stopped between it and its data directory's commit gets the
//! batch back at its next open; a shared source (a Kafka partition) is
//! recorded by one node at a time; every node lists every node's alerts.

use std::sync::Arc;
use vakt_event::decision::Decision;
use vakt_event::{AccessEvent, Action, Alert, Origin, Timestamp};
use vakt_ledger::alerts::AlertFilter;
use vakt_ledger::ledger::use_postgres;
use vakt_ledger::store::postgres::Postings;
use vakt_ledger::verify::verify;
use vakt_ledger::{DataDir, Ledger, LedgerError};
use vakt_pgtemp::TempCluster;

fn database(pg: &TempCluster, name: &str) -> String {
    pg.psql(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    pg.psql(&format!("CREATE DATABASE {name}")).unwrap();
    pg.url(name)
}

fn data_dir(tmp: &tempfile::TempDir, name: &str, url: &str) -> DataDir {
    let dir = DataDir {
        path: tmp.path().join(name),
    };
    use_postgres(&dir, url, Postings::Btree).unwrap();
    dir
}

fn access(source: &Arc<str>, line: u64) -> AccessEvent {
    AccessEvent {
        timestamp: Timestamp(1_800_000_000_000 + line as i64 * 1_000),
        user: format!("acct{}", line % 7),
        organization: Some("org".into()),
        source_ip: Some("10.0.0.1".parse().unwrap()),
        action: Action::Lookup,
        customer_ids: vec![format!("C-{line}")],
        records: 1,
        categories: vec!["name".into()],
        origin: Origin::new(source.clone(), line),
        ..Default::default()
    }
}

fn alert(id: &str) -> Alert {
    serde_json::from_str(&format!(
        r#"{{"id":"{id}","@timestamp":"2026-11-02T08:00:00Z","rule.id":"rate","severity":"high","user.name":"acct1","first_seen":"2026-11-02T08:00:00Z","message":"m","evidence":{{}},"customers":1,"alert.status":"new","alert.updates":0}}"#
    ))
    .unwrap()
}

fn alert_ids(dir: &DataDir) -> Vec<String> {
    let l = Ledger::open_read(dir).unwrap();
    let mut ids: Vec<String> = l
        .alerts(&AlertFilter {
            limit: 1_000,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// The alerts the data directory's own database holds.
fn local_alert_ids(dir: &DataDir) -> Vec<String> {
    let db = rusqlite::Connection::open(dir.db_path()).unwrap();
    let mut s = db.prepare("SELECT id FROM alerts ORDER BY id").unwrap();
    let ids = s.query_map([], |r| r.get(0)).unwrap();
    ids.collect::<Result<_, _>>().unwrap()
}

/// An alert of `user` at minute `minute` of 08:00, in organisation `org`.
fn alert_of(id: &str, rule: &str, severity: &str, user: &str, minute: u32, org: &str) -> Alert {
    let json = serde_json::json!({
        "id": id,
        "@timestamp": format!("2026-11-02T08:{minute:02}:00Z"),
        "rule.id": rule,
        "severity": severity,
        "user.name": user,
        "organization.id": org,
        "first_seen": "2026-11-02T08:00:00Z",
        "message": "m",
        "evidence": {},
        "customers": 1,
        "alert.status": "new",
        "alert.updates": 0,
    });
    serde_json::from_value(json).unwrap()
}

/// Copies the data directory's files as they are on disk: what a process
/// killed at this moment would leave (SQLite ignores the open batch).
fn snapshot(dir: &DataDir, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(&dir.path).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
}

#[test]
fn a_batch_committed_in_postgresql_but_not_in_the_data_directory_is_applied_at_the_next_open() {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "journal");
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(&tmp, "node", &url);
    let source: Arc<str> = "kafka:access:0".into();

    let mut l = Ledger::open(&dir).unwrap();
    for line in 1..=100 {
        l.append_as(&access(&source, line), Some("org")).unwrap();
    }
    l.record_alert(&alert("first")).unwrap();
    assert_eq!(l.take_source(&source).unwrap(), 0);
    l.set_progress(&source, 100).unwrap();
    l.commit().unwrap();

    // The second batch: entries, an alert, a decision, progress.
    for line in 101..=250 {
        l.append_as(&access(&source, line), Some("org")).unwrap();
    }
    l.record_alert(&alert("second")).unwrap();
    let block = Decision::stored(
        "block-acct1".into(),
        "account",
        "acct1",
        "block",
        "second".into(),
        Timestamp(1_800_000_000_000),
        Timestamp(1_900_000_000_000),
    )
    .unwrap();
    l.put_decision(&block).unwrap();
    l.set_progress(&source, 250).unwrap();
    // Killed after PostgreSQL committed the batch and before the data
    // directory did: the copy taken now is what such a kill leaves.
    let before = tmp.path().join("killed");
    snapshot(&dir, &before);
    l.close().unwrap();
    let whole = alert_ids(&dir);
    assert_eq!(whole, ["first", "second"]);

    let killed = DataDir { path: before };
    let l = Ledger::open(&killed).unwrap();
    assert_eq!(
        l.len(),
        250,
        "the entries PostgreSQL holds are kept, not undone"
    );
    assert_eq!(l.progress(&source).unwrap(), 250);
    assert_eq!(
        l.decisions(None)
            .unwrap()
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>(),
        ["block-acct1"]
    );
    l.close().unwrap();
    assert_eq!(
        local_alert_ids(&killed),
        whole,
        "the batch's alert is back in the data directory"
    );
    let report = verify(&killed).unwrap();
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.entries, 250);

    // And appending goes on from there.
    let mut l = Ledger::open(&killed).unwrap();
    assert_eq!(l.take_source(&source).unwrap(), 250);
    for line in 251..=260 {
        assert!(l.append_as(&access(&source, line), Some("org")).unwrap());
    }
    l.set_progress(&source, 260).unwrap();
    l.close().unwrap();
    assert!(verify(&killed).unwrap().problem.is_none());
    assert_eq!(Ledger::open_read(&killed).unwrap().len(), 260);
}

#[test]
fn a_shared_source_is_recorded_by_one_node_at_a_time() {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "fence");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (data_dir(&tmp, "a", &url), data_dir(&tmp, "b", &url));
    let source: Arc<str> = "kafka:access:3".into();

    // Node A holds the partition and records it up to line 40.
    let mut na = Ledger::open(&a).unwrap();
    assert_eq!(na.take_source(&source).unwrap(), 0);
    for line in 1..=40 {
        na.append_as(&access(&source, line), Some("org")).unwrap();
    }
    na.set_progress(&source, 40).unwrap();
    na.put_snapshot(&source, 40, b"state at 40".to_vec())
        .unwrap();
    na.commit().unwrap();

    // The partition moves to node B, which resumes where A left it, with
    // the detector state A left in the store.
    let mut nb = Ledger::open(&b).unwrap();
    assert_eq!(nb.take_source(&source).unwrap(), 40);
    let taken = nb.snapshot(&source).unwrap().unwrap();
    assert_eq!(
        (taken.line, taken.state.as_slice()),
        (40, &b"state at 40"[..])
    );
    for line in 41..=70 {
        nb.append_as(&access(&source, line), Some("org")).unwrap();
    }
    nb.set_progress(&source, 70).unwrap();
    nb.put_snapshot(&source, 70, b"state at 70".to_vec())
        .unwrap();
    nb.commit().unwrap();

    // A, which has not noticed, records lines B already has: refused, and
    // nothing of its batch reaches the store.
    for line in 41..=45 {
        na.append_as(&access(&source, line), Some("org")).unwrap();
    }
    na.set_progress(&source, 45).unwrap();
    na.put_snapshot(&source, 45, b"state at 45".to_vec())
        .unwrap();
    match na.commit() {
        Err(LedgerError::Fenced {
            source_name,
            claimed,
            found,
        }) => {
            assert_eq!(
                (source_name.as_str(), claimed, found),
                ("kafka:access:3", 40, 70)
            );
        }
        other => panic!("expected the batch to be refused, got {other:?}"),
    }
    drop(na);
    let mut na = Ledger::open(&a).unwrap();
    assert_eq!(na.len(), 40, "node A's refused batch was not recorded");
    let kept = na.snapshot(&source).unwrap().unwrap();
    assert_eq!(
        (kept.line, kept.state.as_slice()),
        (70, &b"state at 70"[..])
    );
    drop(na);
    // Snapshots live in the store only: the data directories (and the
    // batches' journal) do not carry copies.
    let local = rusqlite::Connection::open(a.path.join("ledger.db")).unwrap();
    let n: i64 = local
        .query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    nb.close().unwrap();
    assert_eq!(Ledger::open_read(&b).unwrap().len(), 30);
    for d in [&a, &b] {
        assert!(verify(d).unwrap().problem.is_none());
    }

    // A file path is each node's own: never fenced.
    let mut na = Ledger::open(&a).unwrap();
    let file: Arc<str> = "/var/log/app.jsonl".into();
    assert_eq!(na.take_source(&file).unwrap(), 0);
    na.append_as(&access(&file, 1), Some("org")).unwrap();
    na.set_progress(&file, 1).unwrap();
    na.close().unwrap();
    let mut nb = Ledger::open(&b).unwrap();
    assert_eq!(nb.take_source(&file).unwrap(), 0);
    nb.append_as(&access(&file, 1), Some("org")).unwrap();
    nb.set_progress(&file, 1).unwrap();
    nb.close().unwrap();
}

#[test]
fn every_nodes_alerts_are_listed_filtered_and_opened_by_any_node() {
    use vakt_ledger::alert_query::AlertQuery;
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "alerts");
    let tmp = tempfile::tempdir().unwrap();

    // Recorded before the data directory was on the store: shared at its first open.
    let c = DataDir {
        path: tmp.path().join("c"),
    };
    let mut l = Ledger::open(&c).unwrap();
    l.record_alert(&alert_of(
        "early",
        "bulk_read",
        "medium",
        "acct9",
        1,
        "org-c",
    ))
    .unwrap();
    l.close().unwrap();
    use_postgres(&c, &url, Postings::Btree).unwrap();
    Ledger::open(&c).unwrap().close().unwrap();

    let a = data_dir(&tmp, "a", &url);
    let b = data_dir(&tmp, "b", &url);
    let hostile = "x\0y\\0z\\";
    let mut la = Ledger::open(&a).unwrap();
    la.record_alert(&alert_of(
        "moved",
        "login_failures",
        "medium",
        "guess",
        2,
        "org-a",
    ))
    .unwrap();
    la.record_alert(&alert_of("odd", "rate", "high", hostile, 3, "org-\0"))
        .unwrap();
    la.commit().unwrap();
    // The incident moved with its partition: node B escalates it later.
    let mut lb = Ledger::open(&b).unwrap();
    lb.record_alert(&alert_of(
        "moved",
        "login_failures",
        "critical",
        "guess",
        9,
        "org-a",
    ))
    .unwrap();
    lb.record_alert_as(
        &alert_of("quiet", "rate", "low", "acct2", 4, "org-b"),
        Some("exc-1"),
    )
    .unwrap();
    lb.commit().unwrap();
    // Not yet committed: no node lists it.
    lb.record_alert(&alert_of("open", "rate", "low", "acct3", 5, "org-b"))
        .unwrap();

    let reader = Ledger::open_read(&a).unwrap();
    let page = |q: AlertQuery| -> Vec<String> {
        reader
            .alert_page(&q)
            .unwrap()
            .lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let all = |q: AlertQuery| page(AlertQuery { limit: 100, ..q });
    assert_eq!(
        all(AlertQuery::default()),
        ["moved", "quiet", "odd", "early"],
        "most recently active first, every node's, once each"
    );
    assert_eq!(
        local_alert_ids(&a),
        ["moved", "odd"],
        "the data directory keeps its own"
    );
    let moved = reader.alert_row("moved").unwrap().unwrap();
    assert_eq!(moved.severity, "critical", "the latest line wins");
    assert_eq!(
        moved.last.0,
        alert_of("moved", "r", "low", "g", 9, "o").timestamp.0
    );
    assert_eq!(
        moved.first_seen,
        alert_of("moved", "r", "low", "g", 0, "o").timestamp
    );
    let odd = reader.alert_row("odd").unwrap().unwrap();
    assert_eq!(odd.user.as_deref(), Some(hostile), "every byte kept");
    let odd_alert: Alert = serde_json::from_str(&odd.line).unwrap();
    assert_eq!(odd_alert.organization.as_deref(), Some("org-\0"));
    assert!(reader.alert_row("open").unwrap().is_none());

    assert_eq!(
        all(AlertQuery {
            actor: Some(hostile.into()),
            ..Default::default()
        }),
        ["odd"]
    );
    assert_eq!(
        all(AlertQuery {
            organization: Some("org-\0".into()),
            ..Default::default()
        }),
        ["odd"]
    );
    assert_eq!(
        all(AlertQuery {
            rule: Some("rate".into()),
            ..Default::default()
        }),
        ["quiet", "odd"]
    );
    assert_eq!(
        all(AlertQuery {
            suppressed: Some(true),
            ..Default::default()
        }),
        ["quiet"]
    );
    assert_eq!(
        all(AlertQuery {
            min_severity: Some(vakt_event::Severity::High),
            ..Default::default()
        }),
        ["moved", "odd"]
    );
    // A page at a time, from the cursor: each once, in order.
    let mut seen = Vec::new();
    let mut q = AlertQuery {
        limit: 1,
        ..Default::default()
    };
    loop {
        let p = reader.alert_page(&q).unwrap();
        seen.extend(p.lines.iter().map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
        match p.next {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
        assert!(seen.len() <= 4, "{seen:?}");
    }
    assert_eq!(seen, ["moved", "quiet", "odd", "early"]);
    drop(reader);
    lb.close().unwrap();
    la.close().unwrap();
    assert_eq!(alert_ids(&c), ["early", "moved", "odd", "open", "quiet"]);
}

/// A read of `customers` by `user` at minute `minute` of a day, line
/// `line` of `source`.
fn read(source: &Arc<str>, line: u64, user: &str, minute: i64, customers: &[&str]) -> AccessEvent {
    AccessEvent {
        timestamp: Timestamp(1_800_000_000_000 + minute * 60_000),
        user: user.to_owned(),
        organization: Some(format!("org-{user}").chars().take(12).collect()),
        source_ip: Some("10.0.0.2".parse().unwrap()),
        action: Action::Lookup,
        customer_ids: customers.iter().map(|c| c.to_string()).collect(),
        records: customers.len().max(1) as u64,
        categories: vec![format!("cat{}", line % 3)],
        origin: Origin::new(source.clone(), line),
        ..Default::default()
    }
}

#[test]
fn every_node_scopes_every_nodes_chain() {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "names");
    let tmp = tempfile::tempdir().unwrap();
    let a = data_dir(&tmp, "a", &url);
    let b = data_dir(&tmp, "b", &url);
    // Longer than a B-tree entry may be, with a NUL: hostile input.
    let long = format!("{}\0\\end", "x".repeat(5_000));
    let (sa, sb): (Arc<str>, Arc<str>) = ("a.jsonl".into(), "kafka:t:1".into());

    let mut la = Ledger::open(&a).unwrap();
    la.append(&read(&sa, 1, "alice", 10, &["C-1", "C-2"]))
        .unwrap();
    la.append(&read(&sa, 2, &long, 11, &["C-2"])).unwrap();
    la.append(&read(&sa, 3, "alice", 70, &[])).unwrap();
    la.close().unwrap();
    // Another node interns other names first: the same account has
    // another id in its chain, and so have the categories.
    let mut lb = Ledger::open(&b).unwrap();
    lb.append(&read(&sb, 7, "bob", 5, &["C-1"])).unwrap();
    lb.append(&read(&sb, 8, "alice", 20, &["C-1", "C-3"]))
        .unwrap();
    lb.append(&read(&sb, 9, &long, 21, &["C-9"])).unwrap();
    lb.close().unwrap();

    for dir in [&a, &b] {
        let l = Ledger::open_read(dir).unwrap();
        let got: Vec<(String, String, String, i64, String)> = l
            .scope_customer("C-1")
            .unwrap()
            .into_iter()
            .map(|x| (x.account, x.organization, x.source, x.line, x.categories))
            .collect();
        let row = |acct: &str, org: &str, src: &str, line: i64, cat: &str| {
            (acct.into(), org.into(), src.into(), line, cat.into())
        };
        assert_eq!(
            got,
            vec![
                row("bob", "org-bob", "kafka:t:1", 7, "cat1"),
                row("alice", "org-alice", "a.jsonl", 1, "cat1"),
                row("alice", "org-alice", "kafka:t:1", 8, "cat2"),
            ],
            "{}",
            dir.path.display()
        );

        let day = (Timestamp(0), Timestamp(i64::MAX));
        let scope = l.scope_account("alice", day.0, day.1, None).unwrap();
        assert_eq!(scope.accesses, 3);
        let customers: Vec<(String, u64, Vec<String>)> = scope
            .customers
            .iter()
            .map(|c| {
                (
                    c.customer.clone(),
                    c.reads,
                    c.categories.iter().cloned().collect(),
                )
            })
            .collect();
        assert_eq!(
            customers,
            vec![
                ("C-1".into(), 2, vec!["cat1".into(), "cat2".into()]),
                ("C-2".into(), 1, vec!["cat1".into()]),
                ("C-3".into(), 1, vec!["cat2".into()]),
            ]
        );
        assert_eq!(scope.unlisted_records, 1);
        assert_eq!(scope.unlisted_by_category["cat0"], 1);
        // A window holding only the other node's access.
        let window = l
            .scope_account(
                "alice",
                Timestamp(1_800_000_000_000 + 15 * 60_000),
                Timestamp(1_800_000_000_000 + 25 * 60_000),
                None,
            )
            .unwrap();
        let names: Vec<&str> = window
            .customers
            .iter()
            .map(|c| c.customer.as_str())
            .collect();
        assert_eq!(names, ["C-1", "C-3"]);

        let lines: Vec<(String, i64)> = l
            .accesses("alice")
            .unwrap()
            .into_iter()
            .map(|x| (x.source, x.line))
            .collect();
        assert_eq!(lines.len(), 3);
        for want in [("a.jsonl", 1), ("a.jsonl", 3), ("kafka:t:1", 8)] {
            assert!(lines.contains(&(want.0.into(), want.1)), "{lines:?}");
        }
        let hours: u64 = l
            .activity_per_hour("alice", day.0, day.1)
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(hours, 3);

        let hostile = l.scope_account(&long, day.0, day.1, None).unwrap();
        let names: Vec<&str> = hostile
            .customers
            .iter()
            .map(|c| c.customer.as_str())
            .collect();
        assert_eq!(names, ["C-2", "C-9"]);
        assert_eq!(l.scope_customer("C-9").unwrap()[0].account, long);
        assert!(l.scope_customer("C-404").unwrap().is_empty());
        assert_eq!(
            l.scope_account("nobody", day.0, day.1, None)
                .unwrap()
                .accesses,
            0
        );
    }

    // A chain written before names were shared: its names are missing
    // until its node opens its data directory to write, which copies them.
    let chain_b = pg
        .psql_in("names", "SELECT chain FROM vakt.names WHERE name = 'bob'")
        .unwrap();
    pg.psql_in(
        "names",
        &format!("DELETE FROM vakt.names WHERE chain = {}", chain_b.trim()),
    )
    .unwrap();
    rusqlite::Connection::open(b.db_path())
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'names_shared'", [])
        .unwrap();
    let err = Ledger::open_read(&a)
        .unwrap()
        .scope_customer("C-1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not in vakt.names") && err.contains("start that chain's node"),
        "{err}"
    );
    Ledger::open(&b).unwrap().close().unwrap();
    let accounts: Vec<String> = Ledger::open_read(&a)
        .unwrap()
        .scope_customer("C-1")
        .unwrap()
        .into_iter()
        .map(|x| x.account)
        .collect();
    assert_eq!(accounts, ["bob", "alice", "alice"]);
}

fn exception_for(actor: &str, by: &str) -> vakt_event::Exception {
    vakt_event::Exception {
        id: String::new(),
        actor: Some(actor.into()),
        rule: Some("rate".into()),
        destination: None,
        until: None,
        reason: "known batch job".into(),
        created_by: by.into(),
        created_at: Timestamp::now(),
        revoked_at: None,
        revoked_by: None,
    }
}

fn exception_ids(l: &Ledger) -> Vec<(String, Option<String>, bool)> {
    let mut v: Vec<_> = l
        .exceptions(None)
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.actor, e.revoked_at.is_some()))
        .collect();
    v.sort();
    v
}

#[test]
fn exceptions_incidents_tokens_users_and_sessions_made_on_one_node_hold_on_every_node() {
    use vakt_ledger::audit::Who;
    use vakt_ledger::incident_workflow::{IncidentChange, IncidentStatus, Workflow};
    use vakt_ledger::sessions::SessionInfo;
    use vakt_ledger::users::ConsoleRole;
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "records");
    let tmp = tempfile::tempdir().unwrap();

    // A node with a user and an exception from before it was on the store.
    let c = DataDir {
        path: tmp.path().join("c"),
    };
    let mut lc = Ledger::open(&c).unwrap();
    lc.add_user_as("early", "correct horse battery", ConsoleRole::Admin)
        .unwrap();
    let early = lc.add_exception(&exception_for("batch-c", "carl")).unwrap();
    assert_eq!(early.id, "exc-1");
    lc.close().unwrap();
    use_postgres(&c, &url, Postings::Btree).unwrap();
    Ledger::open(&c).unwrap().close().unwrap();

    let a = data_dir(&tmp, "a", &url);
    let b = data_dir(&tmp, "b", &url);
    // As `vakt serve` writes: a connection of its own, each change by itself.
    let mut wa = Ledger::open_read(&a).unwrap();
    let mut wb = Ledger::open_read(&b).unwrap();
    wa.sync_shared().unwrap();
    wb.sync_shared().unwrap();
    // Made on two nodes before either has heard of the other's: two ids.
    let ea = wa.add_exception(&exception_for("batch-a", "anna")).unwrap();
    let eb = wb.add_exception(&exception_for("batch-b", "bert")).unwrap();
    let mut ids = [ea.id.clone(), eb.id.clone(), early.id.clone()];
    ids.sort();
    ids.iter()
        .for_each(|id| assert!(id.starts_with("exc-"), "{id}"));
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    wa.add_user_as("anna", "correct horse staple", ConsoleRole::Analyst)
        .unwrap();
    let secret = wa
        .create_token("proxy-1", vakt_ledger::tokens::Role::Ingest)
        .unwrap();
    let who = Who::new("anna", "console", None);
    let change = IncidentChange {
        status: Some(IncidentStatus::Acknowledged),
        owner: Some("anna".into()),
        ..Default::default()
    };
    wa.update_incident("inc-1", &Workflow::default(), &change, &who, &[])
        .unwrap();
    let session = SessionInfo {
        user: "anna".into(),
        csrf: "csrf-1".into(),
        expires: Timestamp(Timestamp::now().0 + 3_600_000),
    };
    wa.start_session("sid-1", &session, Timestamp::now())
        .unwrap();
    // A writer's change goes with its batch.
    let mut lb = Ledger::open(&b).unwrap();
    let in_batch = lb
        .add_exception(&exception_for("batch-b2", "bert"))
        .unwrap();
    lb.close().unwrap();

    let now = Timestamp::now();
    // b's writer applied a's changes at its commit; b's two exceptions
    // are new to a; nothing is applied twice.
    wb.sync_shared().unwrap();
    assert_eq!(wb.sync_shared().unwrap(), 0, "applied once");
    assert_eq!(wa.sync_shared().unwrap(), 2);
    for l in [&wa, &wb] {
        let ids = exception_ids(l);
        let actors: Vec<&str> = ids.iter().filter_map(|(_, a, _)| a.as_deref()).collect();
        assert_eq!(actors.len(), 4, "{ids:?}");
        for actor in ["batch-a", "batch-b", "batch-b2", "batch-c"] {
            assert!(actors.contains(&actor), "{ids:?}");
        }
        assert!(ids.iter().any(|(id, _, _)| *id == in_batch.id));
        assert!(l.verify_user("anna", "correct horse staple").unwrap());
        assert!(l.verify_user("early", "correct horse battery").unwrap());
        assert_eq!(l.token(&secret).unwrap().unwrap().name, "proxy-1");
        let w = l.incident_workflow("inc-1").unwrap().unwrap();
        assert_eq!(
            (w.status, w.owner.as_deref()),
            (IncidentStatus::Acknowledged, Some("anna"))
        );
        let s = l.session("sid-1", now).unwrap().unwrap();
        assert_eq!(
            (s.session.csrf.as_str(), s.role),
            ("csrf-1", ConsoleRole::Analyst)
        );
    }

    // Revoked, deleted and changed on b: so on a.
    wb.revoke_exception(&ea.id, "bert").unwrap().unwrap();
    wb.set_user_role("anna", ConsoleRole::Viewer).unwrap();
    wb.revoke_token("proxy-1").unwrap();
    wb.delete_user("early").unwrap();
    wa.sync_shared().unwrap();
    let revoked: Vec<_> = exception_ids(&wa)
        .into_iter()
        .filter(|(_, _, r)| *r)
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(revoked, [ea.id.as_str()]);
    assert_eq!(
        wa.session("sid-1", now).unwrap().unwrap().role,
        ConsoleRole::Viewer
    );
    assert!(wa.token(&secret).unwrap().is_none());
    assert!(!wa.verify_user("early", "correct horse battery").unwrap());
    wb.delete_user("anna").unwrap();
    assert!(
        wa.session("sid-1", now).unwrap().is_none(),
        "a session ends with its user"
    );
    // The node that was stopped meanwhile catches up when it opens to write.
    let lc = Ledger::open(&c).unwrap();
    assert_eq!(exception_ids(&lc).len(), 4);
    assert!(!lc.verify_user("anna", "correct horse staple").unwrap());
    lc.close().unwrap();
    drop((wa, wb));
    for d in [&a, &b, &c] {
        let report = verify(d).unwrap();
        assert!(
            report.problem.is_none(),
            "{}: {:?}",
            d.path.display(),
            report.problem
        );
    }
}
