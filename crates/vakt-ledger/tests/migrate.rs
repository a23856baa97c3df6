//! `vakt ledger migrate` on a data directory written by vakt before the
//! segments engine (fixtures/ledger-v1: 4,000 accesses of a simulated
//! operator watched by that version, an alert and a decision by hand).

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;
use vakt_event::{AccessEvent, Event, Origin, Timestamp};
use vakt_ledger::verify::verify;
use vakt_ledger::{migrate, DataDir, Ledger};

fn fixture() -> (tempfile::TempDir, DataDir) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-v1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir {
        path: tmp.path().join("data"),
    };
    std::fs::create_dir(&dir.path).unwrap();
    for name in ["ledger.db", "ledger.key", "ledger.pub"] {
        std::fs::copy(from.join(name), dir.path.join(name)).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700)).unwrap();
        for name in ["ledger.db", "ledger.key"] {
            std::fs::set_permissions(dir.path.join(name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
    }
    (tmp, dir)
}

/// The events the fixture was written from, with the origin `vakt watch` gave them.
fn events(source: &str) -> Vec<AccessEvent> {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-v1/events.jsonl.gz");
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let origin = Origin::new(source.into(), i as u64 + 1);
            match vakt_ingest::parsers::jsonl::parse_event(line, &origin).unwrap() {
                Event::Access(a) => a,
                Event::Flow(_) => panic!("the fixture holds accesses only"),
            }
        })
        .collect()
}

#[test]
fn a_ledger_of_the_sqlite_tables_moves_to_segments_with_every_answer_kept() {
    let (_t, dir) = fixture();
    assert!(migrate::needed(&dir).unwrap());
    // Readable as it is: scope and verify answer from the old tables.
    let before = verify(&dir).unwrap();
    assert_eq!((before.entries, before.problem.clone()), (4000, None));
    let old = Ledger::open_read(&dir).unwrap();
    let who_before = old.scope_customer("C-0000000").unwrap();
    let account_before = old
        .scope_account("10.60.3.5", Timestamp(0), Timestamp(i64::MAX), None)
        .unwrap();
    drop(old);
    let source = who_before[0].source.clone();
    let evs = events(&source);
    let reads = |c: &str| {
        evs.iter()
            .filter(|e| e.customer_ids.iter().any(|x| x == c))
            .count()
    };
    assert_eq!(who_before.len(), reads("C-0000000"));
    let by_account = evs.iter().filter(|e| e.user == "10.60.3.5").count() as u64;
    assert_eq!(account_before.accesses, by_account);

    let done = migrate::migrate(&dir)
        .unwrap()
        .expect("a v1 ledger is migrated");
    assert_eq!(done.entries, 4000);
    assert!(done.backup.exists(), "the old database is kept");
    assert!(!migrate::needed(&dir).unwrap());
    assert!(
        migrate::migrate(&dir).unwrap().is_none(),
        "a second run does nothing"
    );

    let after = verify(&dir).unwrap();
    assert_eq!(after.problem, None);
    assert_eq!(
        (
            after.entries,
            after.checkpoints,
            after.actions,
            after.last_checkpoint
        ),
        (
            4000,
            before.checkpoints,
            before.actions,
            before.last_checkpoint
        ),
        "the same chain, under the same signed checkpoints"
    );
    let new = Ledger::open_read(&dir).unwrap();
    assert_eq!(new.scope_customer("C-0000000").unwrap(), who_before);
    let account_after = new
        .scope_account("10.60.3.5", Timestamp(0), Timestamp(i64::MAX), None)
        .unwrap();
    assert_eq!(account_after.customers, account_before.customers);
    assert_eq!(account_after.accesses, by_account);
    drop(new);

    // Exactly once across the move: the same input adds nothing, new lines are appended.
    let mut l = Ledger::open(&dir).unwrap();
    assert!(evs.iter().all(|e| !l.append(e).unwrap()));
    let mut more = evs[0].clone();
    more.origin = Origin::new(source.as_str().into(), 4001);
    assert!(l.append(&more).unwrap());
    l.close().unwrap();
    let r = verify(&dir).unwrap();
    assert_eq!((r.entries, r.problem), (4001, None));
}

#[test]
fn opening_an_old_ledger_to_write_migrates_it_first() {
    let (_t, dir) = fixture();
    let l = Ledger::open(&dir).unwrap();
    assert_eq!(l.len(), 4000);
    l.close().unwrap();
    assert!(!migrate::needed(&dir).unwrap());
    assert!(dir.path.join("ledger.db.v1").exists());
    assert_eq!(verify(&dir).unwrap().problem, None);
}

#[test]
fn a_ledger_that_does_not_verify_is_not_migrated() {
    let (_t, dir) = fixture();
    rusqlite_edit(
        &dir,
        "UPDATE entries SET records = records + 1 WHERE seq = 10",
    );
    let e = migrate::migrate(&dir).unwrap_err().to_string();
    assert!(
        e.contains("does not verify before") && e.contains("entry 10"),
        "{e}"
    );
    assert!(migrate::needed(&dir).unwrap(), "left as it was");
}

fn rusqlite_edit(dir: &DataDir, sql: &str) {
    let c = rusqlite::Connection::open(dir.db_path()).unwrap();
    c.execute_batch(sql).unwrap();
}
