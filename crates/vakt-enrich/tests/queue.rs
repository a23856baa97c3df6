//! Whether a read lies outside the segments and regions an account's queue serves.

use std::sync::Arc;
use vakt_enrich::Enricher;
use vakt_event::{AccessEvent, Directory, Event};

const DIRECTORY: &str = r#"
[[organization]]
id = "callcenter-north"
kind = "employee"
segments = ["consumer"]
regions = ["SE-AC", "SE-BD"]

[[organization]]
id = "store-1"
kind = "employee"

[[account]]
name = "cc.anna"
organization = "callcenter-north"
role = "support"

[[account]]
name = "cc.bert"
organization = "callcenter-north"
role = "support"
regions = ["SE-AC"]

[[account]]
name = "st1.carl"
organization = "store-1"
role = "store"
"#;

fn outside(user: &str, segment: Option<&str>, region: Option<&str>) -> Option<bool> {
    let mut e = Enricher::new(
        Arc::new(Directory::from_toml(DIRECTORY, "d.toml").unwrap()),
        None,
        None,
    );
    let ev = Event::Access(AccessEvent {
        user: user.into(),
        customer_ids: vec!["C-1".into()],
        records: 1,
        customer_segment: segment.map(str::to_owned),
        customer_region: region.map(str::to_owned),
        ..Default::default()
    });
    let ids = e.prepare(&ev);
    e.enrich(&ev, ids).outside_queue
}

#[test]
fn the_organisations_segments_and_regions_are_its_accounts_queue() {
    assert_eq!(
        outside("cc.anna", Some("consumer"), Some("se-bd")),
        Some(false)
    );
    assert_eq!(
        outside("cc.anna", Some("consumer"), Some("SE-AB")),
        Some(true)
    );
    assert_eq!(
        outside("cc.anna", Some("business"), Some("SE-AC")),
        Some(true)
    );
    assert_eq!(outside("cc.anna", None, Some("SE-AC")), Some(false));
}

#[test]
fn an_account_of_its_own_narrows_the_queue() {
    assert_eq!(outside("cc.bert", None, Some("SE-AC")), Some(false));
    assert_eq!(outside("cc.bert", None, Some("SE-BD")), Some(true));
    // Its segments are still its organisation's.
    assert_eq!(
        outside("cc.bert", Some("business"), Some("SE-AC")),
        Some(true)
    );
}

#[test]
fn nothing_is_said_without_a_region_on_the_event_or_in_the_directory() {
    assert_eq!(outside("cc.anna", None, None), None);
    assert_eq!(outside("st1.carl", Some("business"), Some("SE-AB")), None);
    assert_eq!(outside("nobody", None, Some("SE-AB")), None);
}
