//! The ledger: scope answers equal a brute-force recount; verify finds each kind of tampering.

use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vakt_event::{AccessEvent, Action, Origin, Timestamp};
use vakt_ledger::scope::Cidr;
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
        tamper(
            &dir,
            "UPDATE entries SET records = records + 1 WHERE seq = 1234"
        ),
        Some(Problem::Changed { seq: 1234 })
    );

    let (_t, dir, _) = filled(3000);
    assert_eq!(
        tamper(&dir, "DELETE FROM entries WHERE seq BETWEEN 100 AND 102"),
        Some(Problem::Removed { from: 100, to: 102 })
    );

    let (_t, dir, _) = filled(3000);
    assert_eq!(
        tamper(&dir, "DELETE FROM entries WHERE seq > 2990"),
        Some(Problem::Removed {
            from: 2991,
            to: 3000
        })
    );

    // Moving entries: swap 500 and 501.
    let (_t, dir, _) = filled(3000);
    let p = tamper(&dir, "UPDATE entries SET seq = -1 WHERE seq = 500; UPDATE entries SET seq = 500 WHERE seq = 501; UPDATE entries SET seq = 501 WHERE seq = -1;");
    assert_eq!(p, Some(Problem::Changed { seq: 500 }));

    // Renaming a customer rewrites history for every entry naming it.
    let (_t, dir, evs) = filled(3000);
    let first = evs
        .iter()
        .position(|e| e.customer_ids.iter().any(|c| c == "C-17"))
        .unwrap() as i64
        + 1;
    assert_eq!(
        tamper(
            &dir,
            "UPDATE customers SET name = 'C-X' WHERE name = 'C-17'"
        ),
        Some(Problem::Changed { seq: first })
    );

    // An entry appended behind vakt's back, even with a plausible link.
    let (_t, dir, _) = filled(3000);
    let p = tamper(&dir, "INSERT INTO entries SELECT seq + 1, t, account, org, ip, action, records, cats, case_id, source, line + 1, custs, link FROM entries WHERE seq = 3000");
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
