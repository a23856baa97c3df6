//! An edited directory swapped in while running: ids stay, facts follow the edit.

use std::sync::Arc;
use vakt_enrich::{Enricher, NetworkMatch};
use vakt_event::{AccessEvent, Directory, Event};

const BEFORE: &str = r#"
[[organization]]
id = "partner-3"
kind = "partner"
networks = ["192.0.2.0/24"]

[[organization]]
id = "partner-7"
kind = "broker"
networks = ["198.51.100.0/24"]

[[account]]
name = "p3.anna"
organization = "partner-3"
role = "sales"
"#;

/// The same, with the account moved to partner-7 and a canary added.
const AFTER: &str = r#"
[[organization]]
id = "partner-3"
kind = "partner"
networks = ["192.0.2.0/24"]

[[organization]]
id = "partner-7"
kind = "broker"
networks = ["198.51.100.0/24"]

[[account]]
name = "p3.anna"
organization = "partner-7"
role = "sales"

[[canary]]
customer_id = "C-900001"
"#;

fn directory(text: &str) -> Arc<Directory> {
    Arc::new(Directory::from_toml(text, "d.toml").unwrap())
}

fn read(user: &str, ip: &str, customer: &str) -> Event {
    Event::Access(AccessEvent {
        user: user.into(),
        source_ip: Some(ip.parse().unwrap()),
        customer_ids: vec![customer.into()],
        records: 1,
        ..Default::default()
    })
}

#[test]
fn a_moved_account_is_judged_with_its_new_organisation_and_keeps_its_id() {
    let mut e = Enricher::new(directory(BEFORE), None, None);
    let first = read("p3.anna", "198.51.100.9", "C-900001");
    let before = e.prepare(&first);
    let seen = e.enrich(&first, before);
    assert_eq!(seen.organization, Some("partner-3"));
    assert_eq!(seen.network, NetworkMatch::OtherOrganization("partner-7"));
    assert!(seen.canaries.is_empty());
    let group_before = e.peer_group_name(before.peer_group).to_owned();

    e.reload(directory(AFTER));
    let after = e.prepare(&first);
    let seen = e.enrich(&first, after);
    assert_eq!(
        after.actor, before.actor,
        "detector state is keyed by this id"
    );
    assert_eq!(seen.organization, Some("partner-7"));
    assert_eq!(seen.network, NetworkMatch::Own);
    assert_eq!(seen.canaries, ["C-900001"]);
    assert_eq!(group_before, "partner/sales");
    assert_eq!(e.peer_group_name(after.peer_group), "broker/sales");
}

#[test]
fn actors_first_seen_after_a_reload_get_new_ids_after_the_old_ones() {
    let mut e = Enricher::new(directory(BEFORE), None, None);
    let a = e.prepare(&read("p3.anna", "192.0.2.1", "C-1")).actor;
    let b = e.prepare(&read("p3.bert", "192.0.2.1", "C-1")).actor;
    e.reload(directory(AFTER));
    let c = e.prepare(&read("p3.carl", "192.0.2.1", "C-1")).actor;
    assert_eq!(e.prepare(&read("p3.bert", "192.0.2.1", "C-1")).actor, b);
    assert_eq!(e.prepare(&read("p3.anna", "192.0.2.1", "C-1")).actor, a);
    assert_eq!((a, b, c), (0, 1, 2));
    assert_eq!(e.actors_seen(), 3);
}
