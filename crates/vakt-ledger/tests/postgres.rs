//! The PostgreSQL entry store against a real PostgreSQL (a throwaway
//! cluster on loopback): every answer equals the segments engine's on the
//! same entries, in both postings designs; a commit point undoes what was
//! written after it; one writer per chain; a reader sees only its point.

use std::collections::BTreeSet;
use vakt_ledger::store::postgres::{PgStore, Postings};
use vakt_ledger::store::segments::Segments;
use vakt_ledger::store::{AccountRow, EntryStore, StoredEntry};
use vakt_pgtemp::TempCluster;

/// A database of its own for each test.
fn database(pg: &TempCluster, name: &str) -> String {
    pg.psql(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    pg.psql(&format!("CREATE DATABASE {name}")).unwrap();
    pg.url(name)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Names from hostile input: NUL, backslashes, quotes, non-ASCII.
const ODD: [&str; 6] = ["C-\0", "C\\0", "C\\", "O'Brien", "Åsa \"x\"", "C-7\\\\0"];

fn generated(n: u64, seed: u64) -> Vec<StoredEntry> {
    let mut r = Rng(seed);
    (1..=n)
        .map(|seq| {
            let k = (r.next() % 4) as usize;
            let mut customers: Vec<String> = (0..k)
                .map(|_| match r.next() % 20 {
                    0 => ODD[(r.next() % ODD.len() as u64) as usize].to_owned(),
                    _ => format!("C-{}", r.next() % 300),
                })
                .collect();
            customers.sort_unstable();
            customers.dedup();
            StoredEntry {
                seq,
                t: 1_790_000_000_000 + (r.next() % 1_000_000) as i64,
                account: 10 + r.next() % 25,
                org: 1 + r.next() % 3,
                action: 1 + r.next() % 2,
                categories: 2,
                source: 3,
                ip: format!("10.0.{}.{}", r.next() % 4, r.next() % 200),
                records: (r.next() % 50) as i64,
                case_id: if r.next().is_multiple_of(3) {
                    "K-\0\\1".into()
                } else {
                    format!("K-{}", r.next() % 90)
                },
                line: seq as i64,
                customers,
                link: r.next().to_le_bytes(),
            }
        })
        .collect()
}

fn all(s: &dyn EntryStore) -> Vec<StoredEntry> {
    let mut out = Vec::new();
    s.scan(1, &mut |e| {
        out.push(e.clone());
        Ok(true)
    })
    .unwrap();
    out
}

fn of_customer(s: &dyn EntryStore, c: &str) -> Vec<u64> {
    let mut out = Vec::new();
    s.customer(c, &mut |e| {
        out.push(e.seq);
        Ok(())
    })
    .unwrap();
    out
}

fn of_account(s: &dyn EntryStore, a: u64, since: i64, until: i64) -> Vec<AccountRow> {
    let mut out = Vec::new();
    s.account(a, since, until, &mut |r| {
        out.push(r.clone());
        Ok(())
    })
    .unwrap();
    out
}

fn customer_index(s: &dyn EntryStore) -> BTreeSet<(u64, u64)> {
    let mut out = BTreeSet::new();
    s.customer_index(&mut |k, seq| {
        assert!(out.insert((k, seq)), "posting ({k}, {seq}) twice");
        Ok(())
    })
    .unwrap();
    out
}

fn account_index(s: &dyn EntryStore) -> Vec<(u64, AccountRow)> {
    let mut out = Vec::new();
    s.account_index(&mut |a, r| {
        out.push((a, r.clone()));
        Ok(())
    })
    .unwrap();
    out.sort_by_key(|(a, r)| (*a, r.seq));
    out
}

/// Every question the ledger asks, answered alike by `a` and `b`.
fn assert_same_answers(a: &dyn EntryStore, b: &dyn EntryStore) {
    assert_eq!(a.len(), b.len());
    let entries = all(a);
    assert_eq!(entries.len() as u64, a.len());
    assert_eq!(entries, all(b), "the walks differ");
    let mut names: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.customers.iter().map(|c| c.as_str()))
        .collect();
    names.insert("C-nobody");
    for c in names {
        assert_eq!(of_customer(a, c), of_customer(b, c), "customer {c:?}");
    }
    for acct in 9..36 {
        for (since, until) in [(i64::MIN, i64::MAX), (1_790_000_200_000, 1_790_000_600_000)] {
            assert_eq!(
                of_account(a, acct, since, until),
                of_account(b, acct, since, until),
                "account {acct}"
            );
        }
    }
    assert_eq!(customer_index(a), customer_index(b));
    assert_eq!(account_index(a), account_index(b));
    let seqs: Vec<u64> = (1..=a.len()).step_by(7).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.entries_at(&seqs, &mut |e| {
        x.push(e.clone());
        Ok(())
    })
    .unwrap();
    b.entries_at(&seqs, &mut |e| {
        y.push(e.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(x.len(), seqs.len());
    assert_eq!(x, y);
}

fn fill(s: &mut dyn EntryStore, entries: &[StoredEntry], flush_every: usize) -> Vec<u8> {
    let mut point = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        s.push(e.clone()).unwrap();
        if (i + 1) % flush_every == 0 {
            point = s.flush().unwrap();
        }
    }
    point
}

fn answers_equal_the_segments_engine(postings: Postings) {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, &format!("same_{}", postings.name()));
    let dir = tempfile::tempdir().unwrap();
    // More than one walk chunk (10,000 rows).
    let entries = generated(23_456, 5);
    let mut seg = Segments::open(dir.path(), None).unwrap();
    let mut store = PgStore::open(&url, 0, postings, None).unwrap();
    assert_eq!(store.engine(), format!("pg-{}", postings.name()));
    fill(&mut seg, &entries, 5_000);
    fill(&mut store, &entries, 5_000);
    // Unflushed entries are answered too, as by every engine.
    assert_same_answers(&seg, &store);
    seg.flush().unwrap();
    store.flush().unwrap();
    assert_same_answers(&seg, &store);
    // A reader on another connection gives the same answers.
    let point = store.flush().unwrap();
    let reader = PgStore::open_read(&url, 0, Some(&point)).unwrap();
    assert_same_answers(&seg, &reader);
    let twin = reader.twin().expect("a reader has a twin");
    assert_same_answers(&seg, twin.as_ref());
    assert!(store.disk_bytes().unwrap() > 23_456 * 40);
    // The month's partition exists and holds the rows.
    let parts = pg
        .psql_in(
            &format!("same_{}", postings.name()),
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'vakt.entries'::regclass",
        )
        .unwrap();
    assert_eq!(parts.trim(), "2", "this month's and next month's");
    let in_parent = pg
        .psql_in(
            &format!("same_{}", postings.name()),
            "SELECT count(*) FROM ONLY vakt.entries",
        )
        .unwrap();
    assert_eq!(in_parent.trim(), "0");
}

#[test]
fn btree_postings_answer_as_the_segments_engine_does() {
    answers_equal_the_segments_engine(Postings::Btree);
}

#[test]
fn gin_postings_answer_as_the_segments_engine_does() {
    answers_equal_the_segments_engine(Postings::Gin);
}

#[test]
fn a_commit_point_undoes_what_was_written_after_it() {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "point");
    let entries = generated(3_000, 9);
    let mut store = PgStore::open(&url, 0, Postings::Btree, None).unwrap();
    let point = fill(&mut store, &entries[..1_000], 1_000);
    // Flushed, then the process dies before its caller stores the point.
    fill(&mut store, &entries[1_000..2_000], 1_000);
    drop(store);
    let mut store = PgStore::open(&url, 0, Postings::Btree, Some(&point)).unwrap();
    assert_eq!(store.len(), 1_000);
    assert_eq!(all(&store), entries[..1_000]);
    assert!(
        customer_index(&store).iter().all(|&(_, seq)| seq <= 1_000),
        "postings after the point are gone too"
    );
    // And appending goes on from there.
    fill(&mut store, &entries[1_000..], 500);
    assert_eq!(all(&store), entries);
    // Opened with no point: nothing was committed, so nothing is kept.
    drop(store);
    let store = PgStore::open(&url, 0, Postings::Btree, None).unwrap();
    assert_eq!(store.len(), 0);
}

#[test]
fn one_writer_per_chain_and_readers_see_only_their_point() {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "writers");
    let entries = generated(2_000, 13);
    let mut a = PgStore::open(&url, 1, Postings::Gin, None).unwrap();
    assert!(PgStore::try_open(&url, 1, Postings::Gin, None)
        .unwrap()
        .is_none());
    let err = PgStore::open(&url, 1, Postings::Gin, None).err().unwrap();
    assert!(err.to_string().contains("another vakt process"), "{err}");
    // Another chain in the same database is another writer's, and keeps
    // the database's design whatever it asks for.
    let mut b = PgStore::open(&url, 2, Postings::Btree, None).unwrap();
    assert_eq!(b.postings(), Postings::Gin);
    let first = fill(&mut a, &entries[..1_000], 1_000);
    fill(&mut b, &entries[..10], 10);
    let mut reader = PgStore::open_read(&url, 1, Some(&first)).unwrap();
    let later = fill(&mut a, &entries[1_000..], 1_000);
    assert_eq!(reader.len(), 1_000);
    assert_eq!(all(&reader), entries[..1_000], "only what its point names");
    assert_eq!(of_customer(&reader, "C-1"), {
        let mut v = of_customer(&a, "C-1");
        v.retain(|&s| s <= 1_000);
        v
    });
    reader.advance_read(Some(&later)).unwrap();
    assert_eq!(all(&reader), entries);
    assert!(
        reader.advance_read(Some(&first)).is_err(),
        "points only move on"
    );
    // The lock goes with the connection, however the writer ends.
    drop(a);
    let a = PgStore::open(&url, 1, Postings::Gin, Some(&later)).unwrap();
    assert_eq!(a.len(), 2_000);
    assert_eq!(b.len(), 10);
}

#[test]
fn bad_urls_and_points_say_what_is_wrong() {
    let pg = TempCluster::shared().unwrap();
    let url = database(&pg, "bad");
    let err = PgStore::open(
        &format!("postgres://postgres:wrong@127.0.0.1:{}/bad", pg.port()),
        0,
        Postings::Gin,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("connecting to postgres://postgres:***@"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the password is not shown: {err}");
    let err = PgStore::open(&url, 0, Postings::Gin, Some(b"garbage"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("cannot be read"), "{err}");
    let err = PgStore::open_read(&database(&pg, "empty"), 0, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no vakt ledger"), "{err}");
}

/// A CA and a certificate it signed for `names`, as PEM: (ca, cert, key).
fn signed_certificate(names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "vakt test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// An error and its causes, as one line.
fn chain_of(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A cluster that takes only TLS over TCP: `sslmode=verify-full` with the
/// CA that signed its certificate records and answers; the clear, another
/// CA and another host name are refused; `require` encrypts without
/// checking, as libpq's does.
#[test]
fn over_tls_the_url_decides_how_the_server_is_checked() {
    let pg = TempCluster::start(&vakt_pgtemp::Options {
        hba: Some("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n".into()),
        settings: Vec::new(),
    })
    .unwrap();
    let (ca, cert, key) = signed_certificate(&["127.0.0.1"]);
    let (crt_path, key_path) = (pg.dir().join("server.crt"), pg.dir().join("server.key"));
    std::fs::write(&crt_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some((uid, gid)) = pg.user() {
        for p in [&crt_path, &key_path] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        }
    }
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt_path.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key_path.display()),
        "ALTER SYSTEM SET ssl = on".into(),
        "SELECT pg_reload_conf()".into(),
    ] {
        pg.psql(&sql).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pg.psql("SHOW ssl").unwrap().trim() != "on" {
        assert!(std::time::Instant::now() < deadline, "{}", pg.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    pg.psql("CREATE DATABASE tls").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (ca_path, other_ca) = (tmp.path().join("ca.pem"), tmp.path().join("other.pem"));
    std::fs::write(&ca_path, ca).unwrap();
    std::fs::write(&other_ca, signed_certificate(&["127.0.0.1"]).0).unwrap();
    let base = pg.url("tls");
    let with = |mode: &str, ca: &std::path::Path| {
        format!("{base}?sslmode={mode}&sslrootcert={}", ca.display())
    };

    let verified = with("verify-full", &ca_path);
    let chain = vakt_ledger::store::postgres::new_chain(&verified, "tls", Postings::Btree).unwrap();
    let mut store = PgStore::open(&verified, chain, Postings::Btree, None).unwrap();
    let entries = generated(300, 11);
    fill(&mut store, &entries, 100);
    assert_eq!(all(&store), entries);
    let encrypted = pg
        .psql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'tls' AND s.ssl")
        .unwrap();
    assert!(encrypted.trim().parse::<u32>().unwrap() >= 1, "{encrypted}");

    let refused = |url: &str, says: &str| {
        let e = PgStore::open_read(url, chain, None).err().unwrap();
        let text = chain_of(&e);
        assert!(text.to_lowercase().contains(says), "{url}: {text}");
        let password = format!(":{}@", vakt_pgtemp::PASSWORD);
        assert!(!text.contains(&password), "the password is shown: {text}");
    };
    refused(&base, "pg_hba.conf");
    refused(&with("verify-full", &other_ca), "certificate");
    refused(
        &with("verify-full", &ca_path).replace("127.0.0.1", "localhost"),
        "certificate",
    );
    let unchecked = PgStore::open_read(&with("require", &other_ca), chain, None).unwrap();
    assert_eq!(unchecked.chain_len().unwrap(), 300);
    // The password from PGPASSWORD, for a URL that leaves it out (the
    // only test in this binary that sets the environment).
    let without =
        with("verify-full", &ca_path).replace(&format!(":{}@", vakt_pgtemp::PASSWORD), "@");
    refused(&without, "password");
    std::env::set_var("PGPASSWORD", vakt_pgtemp::PASSWORD);
    let from_env = PgStore::open_read(&without, chain, None);
    std::env::remove_var("PGPASSWORD");
    assert_eq!(from_env.unwrap().chain_len().unwrap(), 300);
}
