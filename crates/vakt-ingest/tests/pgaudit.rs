//! pgaudit entries from pgaudit's README in stderr and csvlog logs (fixtures/pgaudit/SOURCE.md).

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use vakt_event::{Action, Directory, Event, Timestamp};
use vakt_ingest::parsers::{self, ParserContext};
use vakt_ingest::{EventStream, Rejects, StreamConfig};

const DIR: &str = r#"
[postgres]
key_columns = ["id", "customer_id"]

[[postgres.table]]
name = "public.account"
categories = ["name", "password"]
"#;

fn read(file: &str) -> (Vec<vakt_event::AccessEvent>, u64) {
    let text = std::fs::read(format!(
        "{}/fixtures/pgaudit/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let config = StreamConfig {
        format: parsers::format("pgaudit"),
        context: ParserContext {
            directory: Arc::new(Directory::from_toml(DIR, "d").unwrap()),
        },
        ..StreamConfig::default()
    };
    let mut s = EventStream::from_reader(file, Box::new(Cursor::new(text)), config);
    let rejects = Mutex::new(Rejects::new(None, Box::new(|m| eprintln!("{m}"))).unwrap());
    let mut out = Vec::new();
    while let Some(e) = s.next_event(&rejects).unwrap() {
        match e {
            Event::Access(a) => out.push(a),
            other => panic!("{other:?}"),
        }
    }
    let n = rejects.lock().unwrap().count();
    (out, n)
}

#[test]
fn stderr_log_entries_map_to_accesses_with_customers() {
    let (ev, rejected) = read("postgresql.log");
    assert_eq!(rejected, 0);
    assert_eq!(ev.len(), 7, "{ev:#?}");
    // DDL over several lines, kept whole.
    assert_eq!(ev[0].action, Action::Other("ddl".into()));
    assert!(ev[0]
        .db_statement
        .as_deref()
        .unwrap()
        .contains("description text\n);"));
    assert_eq!(
        (ev[0].user.as_str(), ev[0].source_ip),
        ("dba_lind", "10.60.0.20".parse().ok())
    );
    // select * without a key predicate: a search of unknown size.
    assert_eq!((ev[1].action.clone(), ev[1].records), (Action::Search, 0));
    // A keyed read: customer 42, categories from the directory.
    assert_eq!(ev[2].action, Action::Lookup);
    assert_eq!(ev[2].customer_ids, ["42"]);
    assert_eq!(ev[2].categories, ["name", "password"]);
    assert_eq!(
        ev[2].timestamp,
        Timestamp::parse("2026-11-02T08:15:03.789Z").unwrap()
    );
    // An update of two customers.
    assert_eq!(
        (ev[3].action.clone(), ev[3].customer_ids.clone()),
        (Action::Update, vec!["7".to_string(), "8".to_string()])
    );
    // COPY ... TO is an export.
    assert_eq!(
        (ev[4].action.clone(), ev[4].source_ip),
        (Action::Export, "10.99.4.2".parse().ok())
    );
    // A parameter bound to a key column names the customer.
    assert_eq!(ev[5].customer_ids, ["99"]);
    assert_eq!(ev[6].action, Action::Other("ddl".into()));
}

#[test]
fn csvlog_records_over_several_lines_give_the_same_accesses() {
    let (ev, rejected) = read("postgresql.csv");
    assert_eq!(rejected, 0);
    assert_eq!(ev.len(), 3);
    assert_eq!(
        (ev[0].user.as_str(), ev[0].customer_ids.clone()),
        ("cc_app", vec!["42".to_string()])
    );
    assert_eq!(ev[0].source_ip, "10.50.0.7".parse().ok());
    assert_eq!(ev[1].customer_ids, ["7", "8"]);
    assert_eq!(ev[2].action, Action::Export);
}

#[test]
fn a_prefix_without_the_user_is_rejected_with_the_fix() {
    let f = parsers::format("pgaudit").unwrap();
    let mut p = (f.build)(&ParserContext::default());
    let mut out = Vec::new();
    let o = vakt_event::Origin::default();
    p.parse_line(
        "2026-11-02 08:15:01 UTC [1] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,select 1,<none>",
        &o,
        &mut out,
    )
    .unwrap();
    let e = p.finish(&mut out).unwrap_err();
    assert!(e.0.contains("%u"), "{e}");
    let e = p.parse_line("2026-11-02 08:15:01 CET [1] a@b LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,select 1,<none>", &o, &mut out).unwrap_err();
    assert!(e.0.contains("log_timezone"), "{e}");
}

#[test]
fn pgaudits_own_test_csvlog_is_read_whole() {
    let (ev, rejected) = read("analyze-test.csv");
    assert_eq!(rejected, 0);
    // 182 AUDIT messages in the file, one access each.
    assert_eq!(ev.len(), 182);
    assert!(ev
        .iter()
        .all(|e| !e.user.is_empty() && e.db_statement.is_some()));
    assert!(
        ev.iter().all(|e| e.source_ip.is_none()),
        "the test ran over the Unix socket"
    );
    assert!(ev.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
}

/// Finding 10: the quote parity of a csvlog record was recounted over the
/// whole record at each of its lines, so a statement of n lines cost n^2
/// (100k lines took 6.4 s; one 4 MiB statement of newlines, minutes).
/// 200k lines now parse in well under the bound; quadratically they would
/// scan some 240 GB.
#[test]
fn finding_10_a_csvlog_record_of_many_lines_is_read_in_linear_time() {
    let lines = 200_000;
    let mut text = String::from(
        "2026-11-02 08:15:03.789 UTC,cc_app,crm,4712,10.50.0.7:51234,,,,,,,LOG,,\"AUDIT: OBJECT,1,1,READ,SELECT,TABLE,public.account,select password",
    );
    for _ in 0..lines {
        text.push_str("\n  , x");
    }
    text.push_str("\nfrom account where id = 7,<none>\",,,,,,,,,\"\"\n");
    let f = parsers::format("pgaudit").unwrap();
    let ctx = ParserContext {
        directory: Arc::new(Directory::from_toml(DIR, "d").unwrap()),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut p = (f.build)(&ctx);
        let o = vakt_event::Origin::default();
        let mut out = Vec::new();
        for line in text.lines() {
            p.parse_line(line, &o, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a 200k-line record was not read within 60 s");
    assert_eq!(out.len(), 1);
    let Event::Access(a) = &out[0] else {
        panic!("{:?}", out[0])
    };
    assert_eq!(a.customer_ids, ["7"]);
    assert!(a.db_statement.as_ref().unwrap().len() > lines * 5);
}
