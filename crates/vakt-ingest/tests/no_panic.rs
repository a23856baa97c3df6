//! Arbitrary input never panics any parser: it is an event or a clear error.

use proptest::prelude::*;
use std::sync::Arc;
use vakt_event::{Directory, Origin};
use vakt_ingest::parsers::{ParserContext, REGISTRY};

const DIR: &str = r#"
[http]
account = "header:X-Account"

[[http.route]]
pattern = "/customers/{customer}"

[[http.route]]
pattern = "/customers/{customer}/*"
method = "GET"

[postgres]
key_columns = ["id", "customer_id"]

[[postgres.table]]
name = "public.account"
categories = ["name"]
"#;

/// Real lines of every format, to mutate into near-misses.
const SEEDS: &[&str] = &[
    r#"{"@timestamp":"2026-11-02T08:00:00Z","user":{"name":"a"},"event.action":"lookup","customer.ids":["C-1"],"records":3}"#,
    r#"{"@timestamp":"2026-11-02T08:00:00Z","event.kind":"flow","host.name":"h","destination.ip":"10.0.0.1","source.bytes":5}"#,
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes",
    "1591367999.430166\tCLqEx41jYPOdfHF586\t192.168.4.76\t46378\t31.3.245.133\t80\ttcp\thttp\t0.254115\t77\t295",
    r#"{"ts":1591367999.305988,"uid":"C","id.orig_h":"192.168.4.76","id.resp_h":"192.168.4.1","id.resp_p":53,"orig_bytes":62}"#,
    "2026-11-02 08:15:03.789 UTC [4712] user=cc_app,db=crm,client=10.50.0.7 LOG:  AUDIT: OBJECT,1,1,READ,SELECT,TABLE,public.account,\"select * from account where id = 42\",<none>",
    "\t  from account where id in (1, 2),<not logged>",
    "2026-11-02 08:15:03.789 UTC,cc_app,crm,4712,10.50.0.7:51234,,,,,,,LOG,,\"AUDIT: SESSION,1,1,READ,SELECT,,,select 1,<none>\",,,,,,,,,client backend",
    r#"198.51.100.7 - anna [04/Mar/2024:10:42:01 +0100] "GET /customers/1234 HTTP/1.1" 200 5120 "-" "Mozilla/5.0""#,
    r#"{"time_iso8601":"2026-11-02T08:00:00+01:00","remote_addr":"198.51.100.7","request":"GET /customers/9 HTTP/2.0","status":"200","http_x_account":"p3"}"#,
];

fn feed(lines: &[String]) {
    let ctx = ParserContext {
        directory: Arc::new(Directory::from_toml(DIR, "d").unwrap()),
    };
    for format in REGISTRY {
        let mut p = (format.build)(&ctx);
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let _ = p.parse_line(line, &Origin::new("prop".into(), i as u64 + 1), &mut out);
        }
        let _ = p.finish(&mut out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
        let lines: Vec<String> = chunks.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        feed(&lines);
    }

    #[test]
    fn near_misses_of_real_lines_never_panic(
        picks in proptest::collection::vec((0..SEEDS.len(), any::<usize>(), any::<usize>(), ".{0,12}"), 1..8)
    ) {
        let lines: Vec<String> = picks
            .iter()
            .map(|(i, cut, at, insert)| {
                let s = SEEDS[*i];
                // Cut the line short, then splice arbitrary text in, on char boundaries.
                let chars: Vec<char> = s.chars().collect();
                let cut = cut % (chars.len() + 1);
                let at = at % (cut + 1);
                let mut out: String = chars[..at].iter().collect();
                out.push_str(insert);
                out.extend(chars[at..cut].iter());
                out
            })
            .collect();
        feed(&lines);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The whole path: bounded line reading, sniffing, parsing, reordering.
    #[test]
    fn arbitrary_streams_never_panic_and_every_line_is_counted(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        use std::sync::Mutex;
        use vakt_ingest::{EventStream, Rejects, StreamConfig};
        let config = StreamConfig { max_line: 256, ..StreamConfig::default() };
        let mut s = EventStream::from_reader("prop", Box::new(std::io::Cursor::new(bytes)), config);
        let rejects = Mutex::new(Rejects::new(None, Box::new(|_| {})).unwrap());
        while s.next_event(&rejects).unwrap().is_some() {}
        let st = s.stats();
        prop_assert!(st.rejected <= st.lines);
        prop_assert_eq!(st.rejected, rejects.lock().unwrap().count());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Request targets as a hostile client writes them: resolving and
    /// matching never panics, and a resolved path written back resolves to
    /// itself (what the proxy forwards is what it recorded).
    #[test]
    fn request_targets_resolve_without_panic_and_canonical_forms_are_fixed_points(
        target in "(/|%|\\.|[a-zA-Z0-9]|%2[0-9a-fA-F]|%[0-9a-fA-F]{2}|\\?|#|;|\\\\){0,40}"
    ) {
        use vakt_event::routes::{EncodedPaths, RequestPath, Routes, Target};
        let directory = Directory::from_toml(DIR, "d").unwrap();
        let routes = Routes::new(&directory.http.as_ref().unwrap().routes);
        let _ = routes.find("GET", &target);
        for mode in [EncodedPaths::Decode, EncodedPaths::Refuse] {
            if let Ok(t) = Target::parse(&target, mode) {
                let canonical = t.path.canonical();
                let again = RequestPath::parse(&canonical, EncodedPaths::Refuse);
                prop_assert_eq!(again.as_ref(), Ok(&t.path), "{} -> {}", target, canonical);
            }
        }
    }

    /// CSP report bodies, valid JSON or not, never panic the reader.
    #[test]
    fn csp_report_bodies_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        document in ".{0,40}",
        blocked in ".{0,40}",
    ) {
        use vakt_ingest::csp::{split_url, violations};
        let _ = violations("application/csp-report", &body);
        let _ = violations("application/reports+json", &body);
        let json = serde_json::json!({"csp-report": {"document-uri": document, "blocked-uri": blocked}});
        for v in violations("application/csp-report", json.to_string().as_bytes()).unwrap() {
            let _ = split_url(&v.document);
            let _ = split_url(&v.blocked);
        }
    }
}
