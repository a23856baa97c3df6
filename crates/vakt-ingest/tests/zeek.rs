//! Zeek conn.log fixtures from Zeek's own documentation (fixtures/zeek/SOURCE.md).

use std::io::Cursor;
use std::sync::Mutex;
use vakt_event::{Event, Timestamp};
use vakt_ingest::{EventStream, Rejects, StreamConfig};

fn read(path: &str) -> (Vec<Event>, u64) {
    let text = std::fs::read(format!(
        "{}/fixtures/zeek/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut s =
        EventStream::from_reader(path, Box::new(Cursor::new(text)), StreamConfig::default());
    let rejects = Mutex::new(Rejects::new(None, Box::new(|_| {})).unwrap());
    let mut out = Vec::new();
    while let Some(e) = s.next_event(&rejects).unwrap() {
        out.push(e);
    }
    assert_eq!(s.stats().format, Some("zeek"));
    let n = rejects.lock().unwrap().count();
    (out, n)
}

#[test]
fn tsv_and_json_forms_give_the_same_flows() {
    for file in ["conn.log", "conn.json"] {
        let (events, rejected) = read(file);
        assert_eq!(rejected, 0, "{file}");
        assert_eq!(events.len(), 2, "{file}");
        let Event::Flow(f) = &events[1] else {
            panic!("flow expected")
        };
        assert_eq!(f.host, "192.168.4.76");
        assert_eq!(f.destination_ip, Some("31.3.245.133".parse().unwrap()));
        assert_eq!(f.destination_port, Some(80));
        assert_eq!((f.bytes_out, f.bytes_in), (77, Some(295)));
        assert_eq!(f.timestamp, Timestamp(1_591_367_999_430));
        assert_eq!(f.duration_ns.map(|d| d / 1_000_000), Some(254), "{file}");
    }
}

#[test]
fn a_data_line_without_a_header_and_bad_addresses_are_rejected_clearly() {
    use vakt_event::Origin;
    use vakt_ingest::parsers;
    let f = parsers::format("zeek").unwrap();
    let mut p = (f.build)(&Default::default());
    let mut out = Vec::new();
    let o = Origin::default();
    let e = p
        .parse_line(
            "1591367999.305988\tC1\t192.168.4.76\t1\t192.168.4.1\t53",
            &o,
            &mut out,
        )
        .unwrap_err();
    assert!(e.0.contains("#fields"), "{e}");
    p.parse_line(
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p",
        &o,
        &mut out,
    )
    .unwrap();
    let e = p
        .parse_line(
            "1591367999.3\tC1\t999.1.1.1\t1\t192.168.4.1\t53",
            &o,
            &mut out,
        )
        .unwrap_err();
    assert!(e.0.contains("id.orig_h"), "{e}");
    p.parse_line(
        "1591367999.3\tC1\t10.0.0.1\t1\t192.168.4.1\t-",
        &o,
        &mut out,
    )
    .unwrap();
    let Event::Flow(fl) = &out[0] else { panic!() };
    assert_eq!((fl.bytes_out, fl.destination_port), (0, None));
}

#[test]
fn zeeks_own_test_baseline_with_masked_times_is_rejected_clearly() {
    let text = std::fs::read(format!(
        "{}/fixtures/zeek/btest-tls-13.conn.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut s = EventStream::from_reader(
        "btest",
        Box::new(Cursor::new(text)),
        StreamConfig::default(),
    );
    let messages = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let m = messages.clone();
    let rejects = Mutex::new(
        Rejects::new(
            None,
            Box::new(move |x| m.lock().unwrap().push(x.to_string())),
        )
        .unwrap(),
    );
    while s.next_event(&rejects).unwrap().is_some() {}
    assert_eq!(s.stats().format, Some("zeek"));
    // The harness's own first line is no Zeek line; the record's masked time is no time.
    assert_eq!(rejects.lock().unwrap().count(), 2);
    let msgs = messages.lock().unwrap();
    assert!(
        msgs[0].contains("btest:1:") && msgs[0].contains("--format"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains("btest:10:") && msgs[1].contains("`ts` is not epoch seconds"),
        "{msgs:?}"
    );
}
