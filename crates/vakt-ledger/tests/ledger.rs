//! The ledger: scope answers equal a brute-force recount; verify finds each kind of tampering.

use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vakt_event::{AccessEvent, Action, Origin, Timestamp};
use vakt_ledger::scope::Cidr;
use vakt_ledger::store::{customer_key, tamper, StoredEntry};
use vakt_ledger::verify::{verify, Problem};
use vakt_ledger::{DataDir, Ledger};

const CATS: [&str; 4] = ["name", "phone", "address", "national_id"];

fn events(n: usize, seed: u64) -> Vec<AccessEvent> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let source: Arc<str> = "gen.jsonl".into();
    (0..n)
        .map(|i| {
            let k = rng.gen_range(0..4);
            AccessEvent {
                timestamp: Timestamp(1_800_000_000_000 + i as i64 * 60_000),
                user: format!("acct{}", rng.gen_range(0..20)),
                organization: Some("org".into()),
                source_ip: Some(
                    format!("10.0.{}.{}", rng.gen_range(0..3), rng.gen_range(1..50))
                        .parse()
                        .unwrap(),
                ),
                action: if k == 0 {
                    Action::Search
                } else {
                    Action::Lookup
                },
                customer_ids: (0..k)
                    .map(|_| format!("C-{}", rng.gen_range(0..300)))
                    .collect(),
                records: k as u64,
                categories: CATS[..rng.gen_range(1..5)]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                case_id: rng.gen_bool(0.5).then(|| format!("K-{i}")),
                origin: Origin::new(source.clone(), i as u64 + 1),
                ..Default::default()
            }
        })
        .collect()
}

fn filled(n: usize) -> (tempfile::TempDir, DataDir, Vec<AccessEvent>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir {
        path: tmp.path().join("data"),
    };
    let evs = events(n, 7);
    let mut l = Ledger::open(&dir).unwrap();
    for e in &evs {
        assert!(l.append(e).unwrap());
    }
    l.close().unwrap();
    (tmp, dir, evs)
}

#[test]
fn scope_answers_equal_a_brute_force_recount() {
    let (_tmp, dir, evs) = filled(5000);
    let l = Ledger::open_read(&dir).unwrap();
    let net = Cidr::parse("10.0.1.0/24").unwrap();
    for (account, since, until, ip) in [
        ("acct3", Timestamp(0), Timestamp(i64::MAX), None),
        (
            "acct7",
            Timestamp(1_800_000_000_000 + 1000 * 60_000),
            Timestamp(1_800_000_000_000 + 3000 * 60_000),
            None,
        ),
        ("acct11", Timestamp(0), Timestamp(i64::MAX), Some(net)),
    ] {
        let got = l.scope_account(account, since, until, ip).unwrap();
        let mut want: BTreeMap<String, (BTreeSet<String>, i64, i64, u64)> = BTreeMap::new();
        let mut accesses = 0;
        for e in evs
            .iter()
            .filter(|e| e.user == account && e.timestamp >= since && e.timestamp <= until)
        {
            if ip.is_some_and(|n| !n.contains(e.source_ip.unwrap())) {
                continue;
            }
            accesses += 1;
            let mut ids = e.customer_ids.clone();
            ids.sort();
            ids.dedup();
            for c in ids {
                let w = want
                    .entry(c)
                    .or_insert((BTreeSet::new(), i64::MAX, i64::MIN, 0));
                w.0.extend(e.categories.iter().cloned());
                w.1 = w.1.min(e.timestamp.0);
                w.2 = w.2.max(e.timestamp.0);
                w.3 += 1;
            }
        }
        assert_eq!(got.accesses, accesses, "{account}");
        assert_eq!(got.customers.len(), want.len(), "{account}");
        for c in &got.customers {
            let w = &want[&c.customer];
            assert_eq!(
                (&c.categories, c.first.0, c.last.0, c.reads),
                (&w.0, w.1, w.2, w.3),
                "{account} {}",
                c.customer
            );
        }
    }
    let who: Vec<_> = l.scope_customer("C-42").unwrap();
    let want: Vec<_> = evs
        .iter()
        .filter(|e| e.customer_ids.iter().any(|c| c == "C-42"))
        .collect();
    assert_eq!(who.len(), want.len());
    assert!(who.iter().zip(&want).all(|(a, b)| a.account == b.user
        && a.at == b.timestamp
        && a.line == b.origin.line as i64));
}

#[test]
fn appending_the_same_lines_again_adds_nothing() {
    let (_tmp, dir, evs) = filled(500);
    let mut l = Ledger::open(&dir).unwrap();
    assert!(evs.iter().all(|e| !l.append(e).unwrap()));
    assert_eq!(l.len(), 500);
    l.close().unwrap();
    assert_eq!(verify(&dir).unwrap().problem, None);
}

/// Rewrites the entries behind vakt's back (indexes made to agree), then verifies.
fn forge(dir: &DataDir, edit: impl FnOnce(&mut Vec<StoredEntry>)) -> Option<Problem> {
    tamper::rewrite_entries(dir, edit).unwrap();
    verify(dir).unwrap().problem
}

/// Renames a customer in every entry naming it (the index made to agree).
fn rename_customer(dir: &DataDir, from: &str, to: &str) -> Option<Problem> {
    forge(dir, |es| {
        for e in es.iter_mut() {
            for c in e.customers.iter_mut().filter(|c| *c == from) {
                *c = to.into();
            }
            e.customers.sort();
        }
    })
}

fn tamper(dir: &DataDir, sql: &str) -> Option<Problem> {
    Connection::open(dir.db_path())
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    verify(dir).unwrap().problem
}

#[test]
fn verify_finds_each_kind_of_tampering_and_where() {
    let (_t, dir, _) = filled(3000);
    let clean = verify(&dir).unwrap();
    assert_eq!((clean.entries, clean.problem), (3000, None));

    let (_t, dir, _) = filled(3000);
    assert_eq!(
        forge(&dir, |es| es[1233].records += 1),
        Some(Problem::Changed { seq: 1234 })
    );

    let (_t, dir, _) = filled(3000);
    assert_eq!(
        forge(&dir, |es| es.retain(|e| !(100..=102).contains(&e.seq))),
        Some(Problem::Removed { from: 100, to: 102 })
    );

    let (_t, dir, _) = filled(3000);
    assert_eq!(
        forge(&dir, |es| es.truncate(2990)),
        Some(Problem::Removed {
            from: 2991,
            to: 3000
        })
    );

    // Moving entries: swap 500 and 501.
    let (_t, dir, _) = filled(3000);
    let p = forge(&dir, |es| {
        es.swap(499, 500);
        (es[499].seq, es[500].seq) = (500, 501);
    });
    assert_eq!(p, Some(Problem::Changed { seq: 500 }));

    // Renaming a customer rewrites history for every entry naming it.
    let (_t, dir, evs) = filled(3000);
    let first = evs
        .iter()
        .position(|e| e.customer_ids.iter().any(|c| c == "C-17"))
        .unwrap() as i64
        + 1;
    assert_eq!(
        rename_customer(&dir, "C-17", "C-X"),
        Some(Problem::Changed { seq: first })
    );

    // An entry appended behind vakt's back, even with a plausible link.
    let (_t, dir, _) = filled(3000);
    let p = forge(&dir, |es| {
        let mut e = es[2999].clone();
        e.seq += 1;
        e.line += 1;
        es.push(e);
    });
    assert!(
        matches!(
            p,
            Some(Problem::Changed { seq: 3001 }) | Some(Problem::Unsealed { seq: 3001 })
        ),
        "{p:?}"
    );

    let (_t, dir, _) = filled(3000);
    let p = tamper(&dir, "UPDATE checkpoints SET signature = zeroblob(64)");
    assert!(matches!(p, Some(Problem::BadSignature { .. })), "{p:?}");
}

#[test]
fn exposure_ranks_by_the_superlinear_value_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir {
        path: tmp.path().join("data"),
    };
    let mut l = Ledger::open(&dir).unwrap();
    let mut line = 0;
    let mut add = |l: &mut Ledger, user: &str, customers: std::ops::Range<u32>, cats: &[&str]| {
        for c in customers {
            line += 1;
            l.append(&AccessEvent {
                timestamp: Timestamp(1_800_000_000_000 + line * 1000),
                user: user.into(),
                customer_ids: vec![format!("C-{c}")],
                records: 1,
                categories: cats.iter().map(|s| s.to_string()).collect(),
                origin: Origin::new("x".into(), line as u64),
                ..Default::default()
            })
            .unwrap();
        }
    };
    for u in ["a1", "a2", "a3", "a4"] {
        add(&mut l, u, 0..20, &["name"]);
    }
    add(&mut l, "bot", 0..3000, &["name", "phone"]);
    add(&mut l, "idthief", 0..1500, &["name", "national_id"]);
    l.close().unwrap();
    let l = Ledger::open_read(&dir).unwrap();
    let rows: Vec<_> = l
        .exposure(1.5)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "account")
        .collect();
    // value = weights x customers^1.5: national ids outweigh twice the customers of contact data.
    assert_eq!(rows[0].name, "idthief");
    assert_eq!(rows[0].value_per_record, 11);
    assert!((rows[0].value - 11.0 * 1500f64.powf(1.5)).abs() < 1.0);
    assert_eq!(rows[1].name, "bot");
    assert!(
        rows[1].advice.contains("150x the median account"),
        "{}",
        rows[1].advice
    );
    assert!(rows[0].advice.contains("national_id"), "{}", rows[0].advice);
    assert_eq!(rows.last().unwrap().advice, "within what its peers do");
}

#[test]
fn the_report_draft_has_what_article_33_asks_for_and_the_checkpoint() {
    let (_t, dir, evs) = filled(2000);
    let mut l = Ledger::open(&dir).unwrap();
    let line = format!(
        r#"{{"id":"rate-1","@timestamp":"{}","rule.id":"rate","severity":"high","user.name":"acct3","first_seen":"{}","message":"m","evidence":{{}},"customers":1,"alert.status":"new","alert.updates":0}}"#,
        evs[1500].timestamp, evs[0].timestamp
    );
    l.record_alert(&serde_json::from_str(&line).unwrap())
        .unwrap();
    l.close().unwrap();
    let l = Ledger::open_read(&dir).unwrap();
    let r = vakt_ledger::report::draft(&l, "rate-1").unwrap();
    let md = r.markdown(Some("rotate its credentials"));
    assert!(md.contains("- Proposed: rotate its credentials."), "{md}");
    assert!(r
        .markdown(None)
        .contains("- Proposed: contain the actor's access and review its activity."));
    let scope = l
        .scope_account("acct3", evs[0].timestamp, evs[1500].timestamp, None)
        .unwrap();
    for want in [
        "Art. 33(3)(a)",
        "Art. 33(3)(b)",
        "Art. 33(3)(c)",
        "Art. 33(3)(d)",
        "identity theft",
        "## Timeline",
        "signed checkpoint at entry 2000",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    assert!(
        md.contains(&format!("data subjects: **{}**", scope.customers.len())),
        "{md}"
    );
    let html = vakt_ledger::report::to_html(&md);
    assert!(html.contains("<h2>") && html.contains("<table>") && !html.contains("**"));
    assert!(vakt_ledger::report::draft(&l, "nope").is_err());
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Finding 12: the data directory was 0755 and `ledger.db` 0644, so every
/// local user could read TOTP secrets, password hashes and access records.
#[cfg(unix)]
#[test]
fn finding_12_data_directory_and_ledger_files_are_private() {
    let (_tmp, dir, _) = filled(50);
    let mut l = Ledger::open(&dir).unwrap();
    l.append(&events(1, 99)[0]).unwrap();
    assert_eq!(mode(&dir.path), 0o700, "the data directory");
    for name in ["ledger.db", "ledger.db-wal", "ledger.db-shm", "ledger.key"] {
        let path = dir.path.join(name);
        assert!(path.exists(), "{name} is there while the ledger is open");
        assert_eq!(mode(&path), 0o600, "{name}");
    }
    assert!(dir.loose_permissions().is_empty());
    l.close().unwrap();

    // A directory made looser by hand is named, with its mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.db_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = dir.loose_permissions();
    assert!(loose.contains(&(dir.path.clone(), 0o755)), "{loose:?}");
    assert!(loose.contains(&(dir.db_path(), 0o644)), "{loose:?}");
}

/// Finding 13: verify walked the entries only, so damage in a page it does
/// not read (an index) was called intact.
#[test]
fn finding_13_a_flipped_byte_is_found_by_the_integrity_check() {
    let (_t, dir, _) = filled(3000);
    let (root, page): (i64, i64) = {
        let c = Connection::open(dir.db_path()).unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_names_1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (
            root,
            c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap(),
        )
    };
    let mut bytes = std::fs::read(dir.db_path()).unwrap();
    // The index page's type byte.
    bytes[((root - 1) * page) as usize] ^= 0xff;
    std::fs::write(dir.db_path(), bytes).unwrap();
    let p = verify(&dir).unwrap().problem;
    assert!(
        matches!(&p, Some(Problem::Corrupt { detail }) if detail.contains("page") || detail.contains("malformed")),
        "{p:?}"
    );
}

/// A byte flipped in the entry log or in an index run is damage, named
/// with its file, never an answer.
#[test]
fn a_flipped_byte_in_the_entry_store_is_named() {
    for file in ["entries.log", "runs"] {
        let (_t, dir, _) = filled(3000);
        let mut path = dir.entries_path().join(file);
        if path.is_dir() {
            path = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .max_by_key(|p| std::fs::metadata(p).unwrap().len())
                .unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        let p = verify(&dir).unwrap().problem;
        assert!(
            matches!(&p, Some(Problem::Corrupt { detail }) if detail.contains(path.file_name().unwrap().to_str().unwrap())),
            "{file}: {p:?}"
        );
    }
}

/// Finding 13: the `reads` index `vakt scope --customer` answers from was
/// not checked against the chain; deleting rows hid a customer's accesses.
#[test]
fn finding_13_deleted_reads_rows_are_found() {
    let (_t, dir, evs) = filled(3000);
    let first = evs
        .iter()
        .position(|e| e.customer_ids.iter().any(|c| c == "C-17"))
        .unwrap() as i64
        + 1;
    let accesses = || {
        Ledger::open_read(&dir)
            .unwrap()
            .scope_customer("C-17")
            .unwrap()
            .len()
    };
    assert!(accesses() >= 2);
    let id = customer_key("C-17");
    tamper::rewrite_customer_index(&dir, |pairs| pairs.retain(|&(c, _)| c != id)).unwrap();
    let p = verify(&dir).unwrap().problem;
    assert_eq!(accesses(), 0);
    assert_eq!(
        p,
        Some(Problem::IndexMissing {
            seq: first,
            customer: "C-17".into()
        })
    );

    // A read the chain does not hold, added to the index.
    let (_t, dir, evs) = filled(3000);
    let seq = evs
        .iter()
        .position(|e| !e.customer_ids.iter().any(|c| c == "C-17"))
        .unwrap() as i64
        + 1;
    let id = customer_key("C-17");
    tamper::rewrite_customer_index(&dir, |pairs| pairs.push((id, seq as u64))).unwrap();
    let p = verify(&dir).unwrap().problem;
    assert_eq!(
        p,
        Some(Problem::IndexExtra {
            seq,
            customer: "C-17".into()
        })
    );

    // An account's name moved to another kind: `scope --account` finds nobody.
    let (_t, dir, evs) = filled(3000);
    let first = evs.iter().position(|e| e.user == "acct3").unwrap() as i64 + 1;
    let p = tamper(
        &dir,
        "UPDATE names SET kind = 4 WHERE kind = 1 AND name = 'acct3'",
    );
    assert_eq!(p, Some(Problem::Changed { seq: first }));
}

/// The account index answers `scope --account` without reading the log;
/// a row changed, dropped or added there is found and named.
#[test]
fn a_forged_account_index_is_found() {
    let (_t, dir, evs) = filled(3000);
    let seq = evs.iter().position(|e| e.user == "acct3").unwrap() + 1;
    let before = Ledger::open_read(&dir)
        .unwrap()
        .scope_account("acct3", Timestamp(0), Timestamp(i64::MAX), None)
        .unwrap();
    tamper::rewrite_account_index(&dir, |es| es[seq - 1].ip = "10.9.9.9".into()).unwrap();
    let after = Ledger::open_read(&dir)
        .unwrap()
        .scope_account("acct3", Timestamp(0), Timestamp(i64::MAX), None)
        .unwrap();
    assert!(
        after.source_ips.contains_key("10.9.9.9") && !before.source_ips.contains_key("10.9.9.9")
    );
    assert_eq!(
        verify(&dir).unwrap().problem,
        Some(Problem::AccountIndexChanged { seq: seq as i64 })
    );

    let (_t, dir, _) = filled(3000);
    tamper::rewrite_account_index(&dir, |es| {
        es.remove(1500);
    })
    .unwrap();
    assert_eq!(
        verify(&dir).unwrap().problem,
        Some(Problem::AccountIndexChanged { seq: 1501 })
    );
}

fn alert(id: &str, severity: &str) -> vakt_event::Alert {
    serde_json::from_str(&format!(
        r#"{{"id":"{id}","@timestamp":"2027-01-15T08:00:00Z","rule.id":"rate","severity":"{severity}","user.name":"acct3","first_seen":"2027-01-15T07:00:00Z","message":"m","evidence":{{}},"customers":1,"alert.status":"new","alert.updates":0}}"#
    ))
    .unwrap()
}

/// A ledger with alerts (one escalated) and decisions (one lifted).
fn with_alerts_and_decisions() -> (tempfile::TempDir, DataDir) {
    use vakt_ledger::decisions::{Action, Decision, Scope};
    let (t, dir, _) = filled(500);
    let mut l = Ledger::open(&dir).unwrap();
    for (id, severity) in [("rate-1", "medium"), ("rate-2", "high"), ("rate-1", "high")] {
        l.record_alert(&alert(id, severity)).unwrap();
    }
    for (id, ip) in [
        ("d-1", "192.0.2.7"),
        ("d-2", "192.0.2.8"),
        ("d-3", "192.0.2.9"),
    ] {
        let d = Decision::new(
            id.into(),
            Scope::Ip,
            ip,
            Action::Block,
            "by hand".into(),
            Timestamp(1_800_000_000_000),
            3_600_000,
        )
        .unwrap();
        l.put_decision(&d).unwrap();
    }
    assert!(l.delete_decision("d-3").unwrap());
    l.close().unwrap();
    (t, dir)
}

/// Finding 13: alerts and decisions were outside the chain, so deleting or
/// changing one went unnoticed.
#[test]
fn finding_13_changed_or_deleted_alerts_and_decisions_are_found() {
    let (_t, dir) = with_alerts_and_decisions();
    assert_eq!(verify(&dir).unwrap().problem, None);
    let alert_changed = |id: &str| Some(Problem::AlertChanged { id: id.into() });
    let decision_changed = |id: &str| Some(Problem::DecisionChanged { id: id.into() });
    for (sql, want) in [
        (
            "UPDATE alerts SET severity = 'low', line = replace(line, '\"high\"', '\"low\"') WHERE id = 'rate-1'",
            alert_changed("rate-1"),
        ),
        ("DELETE FROM alerts WHERE id = 'rate-2'", alert_changed("rate-2")),
        (
            "INSERT INTO alerts SELECT 'rate-3', rule, actor, user, first_seen, detected, last, severity, line FROM alerts WHERE id = 'rate-2'",
            alert_changed("rate-3"),
        ),
        ("DELETE FROM decisions WHERE id = 'd-1'", decision_changed("d-1")),
        (
            "UPDATE decisions SET expires = expires + 86400000 WHERE id = 'd-2'",
            decision_changed("d-2"),
        ),
        (
            "INSERT INTO decisions SELECT 'd-3', scope, '192.0.2.9', action, reason, created, expires FROM decisions WHERE id = 'd-2'",
            decision_changed("d-3"),
        ),
    ] {
        let (_t, dir) = with_alerts_and_decisions();
        assert_eq!(tamper(&dir, sql), want, "{sql}");
    }
    // Deleting the alert's history too breaks the actions chain.
    let (_t, dir) = with_alerts_and_decisions();
    let p = tamper(
        &dir,
        "DELETE FROM actions WHERE subject = 'rate-2'; DELETE FROM alerts WHERE id = 'rate-2'",
    );
    assert!(
        matches!(
            p,
            Some(Problem::ActionsRemoved { .. } | Problem::ActionChanged { .. })
        ),
        "{p:?}"
    );
}

fn verify_anchored(dir: &DataDir, anchors: &[vakt_ledger::anchor::Anchor]) -> Option<Problem> {
    let options = vakt_ledger::verify::VerifyOptions {
        anchors: anchors.to_vec(),
        public_key: Some(dir.verifying_key().unwrap()),
        ..Default::default()
    };
    vakt_ledger::verify::verify_with(dir, &options, &mut |_, _| {})
        .unwrap()
        .problem
}

/// Finding 13: cutting the newest entries together with their checkpoints
/// left a shorter ledger that verified; an anchor kept elsewhere finds it.
#[test]
fn finding_13_a_cut_tail_is_found_against_the_anchor() {
    use vakt_ledger::anchor::{self, Anchor};
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir {
        path: tmp.path().join("data"),
    };
    let mut l = Ledger::open(&dir).unwrap();
    for batch in events(3000, 7).chunks(1000) {
        for e in batch {
            l.append(e).unwrap();
        }
        l.commit().unwrap();
    }
    l.record_alert(&alert("rate-1", "high")).unwrap();
    l.close().unwrap();
    let line = anchor::latest(&dir).unwrap().to_json_line();
    let anchors = Anchor::parse_lines(&line, "anchors.jsonl").unwrap();
    assert_eq!((anchors[0].seq, anchors[0].actions), (3000, Some(1)));
    assert_eq!(verify_anchored(&dir, &anchors), None);

    // An anchor edited to another hash is refused.
    let mut edited = anchors.clone();
    edited[0].hash = "00".repeat(32);
    assert!(
        matches!(
            verify_anchored(&dir, &edited),
            Some(Problem::AnchorMismatch { seq: 3000, .. })
        ),
        "{:?}",
        verify_anchored(&dir, &edited)
    );

    // The last batch cut with its checkpoint and the alert it led to: the
    // rest verifies alone.
    tamper::rewrite_entries(&dir, |es| es.truncate(2000)).unwrap();
    let p = tamper(
        &dir,
        "DELETE FROM checkpoints WHERE seq > 2000; DELETE FROM actions; DELETE FROM alerts",
    );
    assert_eq!(p, None);
    assert_eq!(
        verify_anchored(&dir, &anchors),
        Some(Problem::ShorterThanAnchor {
            anchored: 3000,
            have: 2000
        })
    );

    // A ledger signed by another key is refused with the given public key.
    let (_t, other, _) = filled(3000);
    let options = vakt_ledger::verify::VerifyOptions {
        public_key: Some(dir.verifying_key().unwrap()),
        ..Default::default()
    };
    let p = vakt_ledger::verify::verify_with(&other, &options, &mut |_, _| {})
        .unwrap()
        .problem;
    assert_eq!(p, Some(Problem::BadSignature { seq: 3000 }));
}

/// Finding 13: verify loaded every name into memory; it now streams, with
/// names in a cache of bounded size.
#[test]
fn finding_13_verify_streams_with_bounded_memory() {
    let (_t, dir, evs) = filled(3000);
    // More accounts than the cache holds; customers are kept by name in
    // the entries and need no look-up.
    let distinct: BTreeSet<&String> = evs.iter().map(|e| &e.user).collect();
    assert!(distinct.len() > 16);
    let options = vakt_ledger::verify::VerifyOptions {
        name_cache: 16,
        ..Default::default()
    };
    let r = vakt_ledger::verify::verify_with(&dir, &options, &mut |_, _| {}).unwrap();
    assert_eq!((r.entries, r.problem), (3000, None));
    assert!(
        r.names_cached > 0 && r.names_cached <= 16,
        "{} names held",
        r.names_cached
    );
    // Names that left the cache are looked up again, not trusted.
    let p = tamper(
        &dir,
        "UPDATE names SET name = 'acctX' WHERE name = 'acct17'",
    );
    assert!(matches!(p, Some(Problem::Changed { .. })), "{p:?}");
    // Read in one pass when they all fit (the default), they are judged
    // the same way.
    let r = vakt_ledger::verify::verify(&dir).unwrap();
    assert!(
        r.names_cached >= distinct.len(),
        "{} names held",
        r.names_cached
    );
    assert!(matches!(r.problem, Some(Problem::Changed { .. })), "{r:?}");
}

/// Finding 18: roles are what a console user may do, so they are chained
/// with the user: a viewer made admin by hand in the database is found.
#[test]
fn finding_18_a_role_raised_by_hand_is_found_by_verify() {
    use vakt_ledger::users::ConsoleRole;
    let (_t, dir, _) = filled(10);
    let mut l = Ledger::open(&dir).unwrap();
    l.add_user_as("vera", "a-long-password", ConsoleRole::Viewer)
        .unwrap();
    assert!(l.set_user_role("vera", ConsoleRole::Analyst).unwrap());
    l.close().unwrap();
    assert_eq!(
        verify(&dir).unwrap().problem,
        None,
        "a role changed by vakt is sealed"
    );
    let found = tamper(&dir, "UPDATE users SET role = 'admin' WHERE name = 'vera'");
    assert!(
        matches!(&found, Some(Problem::UserChanged { name }) if name == "vera"),
        "{found:?}"
    );
}

/// An incident acknowledged, assigned, noted and closed through the
/// workflow: its state and history read back, a no-op records nothing,
/// and `verify` finds an audit record or a state changed or removed by
/// hand.
#[test]
fn incident_changes_are_audited_and_verify_finds_them_tampered() {
    use vakt_ledger::audit::Who;
    use vakt_ledger::incident_workflow::{Classification, IncidentChange, IncidentStatus};
    let (_t, dir) = with_alerts_and_decisions();
    let mut l = Ledger::open(&dir).unwrap();
    let inc = l
        .find_incident("rate-2")
        .unwrap()
        .expect("rate-2's incident");
    assert_eq!(inc.id, "acct3/rate-1", "found by an alert it holds");
    assert_eq!(inc.workflow.status, IncidentStatus::New);
    let ana = Who::new("ana", "cli", Some("host-1".into()));
    let mut now = inc.workflow.clone();
    for change in [
        IncidentChange {
            status: Some(IncidentStatus::Acknowledged),
            owner: Some("ana".into()),
            ..Default::default()
        },
        IncidentChange {
            note: Some("called the reseller".into()),
            ..Default::default()
        },
        IncidentChange {
            status: Some(IncidentStatus::Resolved),
            classification: Some(Classification::FalsePositive),
            reason: Some("the reseller's nightly sync".into()),
            ..Default::default()
        },
    ] {
        let (next, record) = l
            .update_incident(&inc.id, &now, &change, &ana, &[])
            .unwrap();
        assert!(record.is_some());
        now = next;
    }
    // A caller holding what it read before the changes above (the CLI
    // beside `vakt serve`) changes the stored state, not its stale copy.
    let stale = vakt_ledger::incident_workflow::Workflow::default();
    let note = IncidentChange {
        note: Some("from a stale read".into()),
        ..Default::default()
    };
    let (kept, _) = l
        .update_incident(&inc.id, &stale, &note, &ana, &[])
        .unwrap();
    assert_eq!(
        kept.status,
        IncidentStatus::Resolved,
        "the stored state is kept"
    );
    let again = IncidentChange {
        owner: Some("ana".into()),
        ..Default::default()
    };
    let (_, record) = l.update_incident(&inc.id, &now, &again, &ana, &[]).unwrap();
    assert!(
        record.is_none(),
        "a change that changes nothing is not recorded"
    );
    l.close().unwrap();

    let l = Ledger::open_read(&dir).unwrap();
    let inc = l.find_incident("acct3/rate-1").unwrap().unwrap();
    assert_eq!(inc.workflow.status, IncidentStatus::Resolved);
    assert_eq!(inc.workflow.owner.as_deref(), Some("ana"));
    assert_eq!(
        inc.workflow.classification,
        Some(Classification::FalsePositive)
    );
    assert_eq!(inc.workflow.updated_by.as_deref(), Some("ana"));
    let history = l.audit_records(Some(&inc.id), 100).unwrap();
    let actions: Vec<_> = history.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "incident.update",
            "incident.note",
            "incident.update",
            "incident.note"
        ]
    );
    assert_eq!(
        history[0].details["changes"]["status"],
        serde_json::json!(["new", "acknowledged"])
    );
    assert_eq!(history[1].details["note"], "called the reseller");
    assert_eq!(
        history[2].reason.as_deref(),
        Some("the reseller's nightly sync")
    );
    assert_eq!(
        (history[2].via.as_str(), history[2].source.as_deref()),
        ("cli", Some("host-1"))
    );
    drop(l);
    assert_eq!(
        verify(&dir).unwrap().problem,
        None,
        "changes made by vakt are sealed"
    );

    let found = tamper(&dir, "UPDATE audit SET who = 'mallory' WHERE id = 'aud-3'");
    assert_eq!(found, Some(Problem::AuditChanged { id: "aud-3".into() }));
    let found = tamper(
        &dir,
        "UPDATE audit SET who = 'ana' WHERE id = 'aud-3'; DELETE FROM audit WHERE id = 'aud-2'",
    );
    assert_eq!(found, Some(Problem::AuditChanged { id: "aud-2".into() }));
    let (_t, dir) = with_alerts_and_decisions();
    let mut l = Ledger::open(&dir).unwrap();
    let inc = l.find_incident("rate-1").unwrap().unwrap();
    let close = IncidentChange {
        status: Some(IncidentStatus::Resolved),
        classification: Some(Classification::TruePositive),
        reason: Some("confirmed with the reseller".into()),
        ..Default::default()
    };
    l.update_incident(&inc.id, &inc.workflow, &close, &ana, &[])
        .unwrap();
    l.close().unwrap();
    let found = tamper(
        &dir,
        "UPDATE incident_states SET classification = 'false_positive'",
    );
    assert_eq!(
        found,
        Some(Problem::IncidentChanged {
            id: "acct3/rate-1".into()
        })
    );
}

/// A bulk export names no customers: its records still count as data
/// subjects (approximate, and said so) with the categories it read; and
/// once the incident is marked a breach the draft states the awareness
/// time, each deadline, and why a late one is late.
#[test]
fn the_report_counts_an_exports_records_and_states_the_notification_deadlines() {
    use vakt_event::notification::Regime;
    use vakt_ledger::audit::Who;
    use vakt_ledger::incident_workflow::IncidentChange;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir {
        path: tmp.path().join("data"),
    };
    let t0 = 1_800_000_000_000;
    let source: Arc<str> = "export.jsonl".into();
    let mut l = Ledger::open(&dir).unwrap();
    for (i, records) in [150_000u64, 12_787].into_iter().enumerate() {
        let e = AccessEvent {
            timestamp: Timestamp(t0 + i as i64 * 60_000),
            user: "mgr.olof".into(),
            action: Action::Export,
            records,
            categories: ["address", "phone", "national_id"]
                .map(String::from)
                .to_vec(),
            origin: Origin::new(source.clone(), i as u64 + 1),
            ..Default::default()
        };
        assert!(l.append(&e).unwrap());
    }
    let line = format!(
        r#"{{"id":"bulk-1","@timestamp":"{}","rule.id":"bulk_export","severity":"critical","user.name":"mgr.olof","first_seen":"{}","message":"m","evidence":{{}},"customers":162787,"alert.status":"new","alert.updates":0}}"#,
        Timestamp(t0 + 60_000),
        Timestamp(t0)
    );
    l.record_alert(&serde_json::from_str(&line).unwrap())
        .unwrap();
    l.close().unwrap();

    let mut l = Ledger::open_read(&dir).unwrap();
    let md = vakt_ledger::report::draft(&l, "bulk-1")
        .unwrap()
        .markdown(None);
    assert!(
        md.contains("data subjects: **150,000 to 162,787** (approximate: the reads named no customers; the largest returned 150,000 records and all of them 162,787"),
        "{md}"
    );
    for c in ["national_id", "address", "phone"] {
        assert!(
            md.contains(&format!(
                "  - {c}: up to 162,787 data subjects (approximate)"
            )),
            "{c}:\n{md}"
        );
    }
    assert!(md.contains("identity theft"), "{md}");
    assert!(md.contains("not yet marked a personal-data breach"), "{md}");

    let inc = l.find_incident("bulk-1").unwrap().unwrap();
    let mark = IncidentChange {
        breach: Some(true),
        aware_at: Some("2026-11-02T08:00:00Z".into()),
        aware_reason: Some("the reseller reported the export".into()),
        delay_reason: Some("the export's owner was on leave".into()),
        ..Default::default()
    };
    let ana = Who::new("ana", "console", None);
    let (w, _) = l
        .update_incident(&inc.id, &inc.workflow, &mark, &ana, &[])
        .unwrap();
    let sent = IncidentChange {
        notified: Some("gdpr.art33".into()),
        notified_at: Some("2026-11-04T08:00:00Z".into()),
        ..Default::default()
    };
    l.update_incident(&inc.id, &w, &sent, &ana, &[]).unwrap();
    let mut r = vakt_ledger::report::draft(&l, "bulk-1").unwrap();
    r.regimes = vec![Regime::Gdpr, Regime::Telecom];
    let md = r.markdown(None);
    assert!(
        md.contains("became aware of the breach at 2026-11-02T08:00:00.000Z (the reseller reported the export)"),
        "{md}"
    );
    assert!(
        md.contains("| GDPR Art. 33: the supervisory authority | 2026-11-05T08:00:00.000Z | 2026-11-04T08:00:00.000Z |"),
        "{md}"
    );
    assert!(md.contains("| Regulation 611/2013: the national authority | 2026-11-03T08:00:00.000Z | _not yet: overdue_ |"), "{md}");
    assert!(
        md.contains("Reasons for the delay: the export's owner was on leave"),
        "{md}"
    );
}
