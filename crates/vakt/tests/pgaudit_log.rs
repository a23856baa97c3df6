//! A real pgaudit log: `vakt bench pgaudit --record-only` starts a
//! throwaway PostgreSQL with pgaudit on 127.0.0.1, runs pgbench and some
//! statements with literal customer keys, and keeps the stderr and csvlog
//! logs under the target directory (where `vakt bench pgaudit --log` can
//! read them again). Needs the PostgreSQL server binaries, pgbench and
//! pgaudit: without them the test fails and says what to install.

mod support;

use std::sync::Arc;
use vakt_event::{AccessEvent, Directory, Event, Origin};
use vakt_ingest::parsers::pgaudit::PgAudit;
use vakt_ingest::{Parser, ParserContext};

fn parse(text: &str, directory: &Arc<Directory>, shape_cache: bool) -> Vec<AccessEvent> {
    let ctx = ParserContext {
        directory: directory.clone(),
    };
    let mut p = PgAudit::with_shape_cache(&ctx, shape_cache);
    let origin = Origin::default();
    let mut out = Vec::new();
    for line in text.lines() {
        p.parse_line(line, &origin, &mut out)
            .unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    p.finish(&mut out).unwrap();
    out.into_iter()
        .map(|e| match e {
            Event::Access(a) => a,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_recorded_pgaudit_log_reads_the_same_cached_uncached_stderr_and_csvlog() {
    let keep = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pgaudit-log");
    let out = support::vakt()
        .args([
            "bench",
            "pgaudit",
            "--record-only",
            "--seconds",
            "2",
            "--keep",
        ])
        .arg(&keep)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recording failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let directory = Arc::new(
        Directory::from_toml(
            &std::fs::read_to_string(keep.join("directory.toml")).unwrap(),
            "directory.toml",
        )
        .unwrap(),
    );
    let stderr = std::fs::read_to_string(keep.join("postgresql.log")).unwrap();
    let csvlog = std::fs::read_to_string(keep.join("postgresql.csv")).unwrap();

    let from_stderr = parse(&stderr, &directory, true);
    let from_csvlog = parse(&csvlog, &directory, true);
    // Every audited statement became an event.
    assert_eq!(from_stderr.len(), stderr.matches(" LOG:  AUDIT: ").count());
    assert_eq!(from_csvlog.len(), csvlog.matches(",\"AUDIT: ").count());
    assert!(from_stderr.len() > 1_000, "{} audits", from_stderr.len());

    // The shape cache reads what sqlparser reads, statement by statement.
    assert!(from_stderr == parse(&stderr, &directory, false));
    assert!(from_csvlog == parse(&csvlog, &directory, false));

    // Both logs give the same events (their line numbers aside; entries
    // of concurrent sessions within a millisecond may come in either order).
    let strip = |v: &[AccessEvent]| -> Vec<AccessEvent> {
        let mut v: Vec<AccessEvent> = v
            .iter()
            .map(|a| AccessEvent {
                origin: Origin::default(),
                ..a.clone()
            })
            .collect();
        v.sort_by(|a, b| {
            (a.timestamp, &a.db_statement, &a.customer_ids).cmp(&(
                b.timestamp,
                &b.db_statement,
                &b.customer_ids,
            ))
        });
        v
    };
    let (a, b) = (strip(&from_stderr), strip(&from_csvlog));
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        panic!("event {i} differs:\nstderr {:?}\ncsvlog {:?}", a[i], b[i]);
    }
    assert_eq!(a.len(), b.len());

    // pgbench's keyed reads (literals, then `$1` with logged parameters)
    // and the literal keys of the extra statements name customers.
    let keyed = from_stderr
        .iter()
        .filter(|a| !a.customer_ids.is_empty())
        .count();
    assert!(keyed * 10 > from_stderr.len() * 9, "{keyed} keyed");
    let ids_of = |needle: &str| -> Vec<String> {
        from_stderr
            .iter()
            .find(|a| {
                a.db_statement
                    .as_deref()
                    .is_some_and(|s| s.contains(needle))
            })
            .unwrap_or_else(|| panic!("no audit of {needle}"))
            .customer_ids
            .clone()
    };
    assert_eq!(ids_of("IN ('C-1', 'C-2', 'C-3')"), ["C-1", "C-2", "C-3"]);
    assert_eq!(ids_of("WHERE customer_id = 'C-3'\n   AND"), ["C-3"]);
    assert_eq!(ids_of("aid IN (1, 2, 3)"), ["1", "2", "3"]);
    assert!(from_stderr.iter().any(|a| a
        .db_statement
        .as_deref()
        .is_some_and(|s| s.contains("aid = $1"))
        && a.customer_ids.len() == 1));
}
