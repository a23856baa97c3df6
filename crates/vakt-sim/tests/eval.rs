//! `evaluate` on a small hand-made alert file.

use vakt_event::{Alert, Timestamp};
use vakt_sim::eval::evaluate;
use vakt_sim::{BenignSummary, LabelActors, Labels, Scenario, ScenarioLabel};

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn label(id: Scenario, user: &str, start: &str, end: &str) -> ScenarioLabel {
    ScenarioLabel {
        id,
        title: id.title().into(),
        actors: LabelActors {
            users: vec![user.into()],
            hosts: vec![],
            ips: vec![],
        },
        start: ts(start),
        end: ts(end),
        customers: 10,
        events: 10,
    }
}

fn alert(id: &str, at: &str, rule: &str, sev: &str, user: &str, status: &str) -> Alert {
    let line = format!(
        r#"{{"id":"{id}","@timestamp":"{at}","rule.id":"{rule}","severity":"{sev}","user.name":"{user}","first_seen":"{at}","message":"m","evidence":{{}},"customers":3,"alert.status":"{status}","alert.updates":0}}"#
    );
    serde_json::from_str(&line).unwrap()
}

#[test]
fn the_table_counts_detections_delays_false_positives_and_noise() {
    let labels = Labels {
        seed: 1,
        days: 30,
        start: ts("2026-11-02T00:00:00Z"),
        end: ts("2026-12-02T00:00:00Z"),
        scenarios: vec![
            label(
                Scenario::S1,
                "p3.bot",
                "2026-11-10T10:00:00Z",
                "2026-11-10T14:00:00Z",
            ),
            label(
                Scenario::S5,
                "cc.mole",
                "2026-11-12T08:00:00Z",
                "2026-11-20T18:00:00Z",
            ),
        ],
        benign: BenignSummary {
            actors: 100,
            actor_days: 2000,
        },
    };
    let alerts = vec![
        // S1: low first (does not count), then medium 5 minutes in, then an escalation of the same incident.
        alert(
            "a1",
            "2026-11-10T10:02:00Z",
            "foreign_network",
            "low",
            "p3.bot",
            "new",
        ),
        alert(
            "a1",
            "2026-11-10T10:05:00Z",
            "foreign_network",
            "medium",
            "p3.bot",
            "escalated",
        ),
        alert(
            "a2",
            "2026-11-10T10:07:00Z",
            "rate",
            "high",
            "p3.bot",
            "new",
        ),
        alert(
            "a2",
            "2026-11-10T10:30:00Z",
            "rate",
            "high",
            "p3.bot",
            "update",
        ),
        // S5 only ever low: missed.
        alert(
            "a3",
            "2026-11-13T10:00:00Z",
            "no_business_context",
            "low",
            "cc.mole",
            "new",
        ),
        // Benign: one actor with a medium incident (twice), one with low noise.
        alert(
            "a4",
            "2026-11-15T10:00:00Z",
            "volume_peers",
            "medium",
            "st1.anna",
            "new",
        ),
        alert(
            "a5",
            "2026-11-16T10:00:00Z",
            "volume_peers",
            "medium",
            "st1.anna",
            "new",
        ),
        alert(
            "a6",
            "2026-11-16T11:00:00Z",
            "new_category",
            "low",
            "cc.eva",
            "new",
        ),
    ];
    let e = evaluate(&labels, &alerts);
    assert_eq!(e.incidents, 6);
    let s1 = &e.scenarios[0];
    assert!(s1.detected);
    assert_eq!(s1.time_to_detect_ms, Some(5 * 60_000));
    assert_eq!(s1.rules, vec!["foreign_network", "rate"]);
    assert!(!e.scenarios[1].detected);
    assert_eq!(e.false_positive_actors, vec!["st1.anna"]);
    assert!((e.false_positives_per_1000_actor_days - 0.5).abs() < 1e-9);
    assert_eq!((e.low_noise_actors, e.low_noise_incidents), (1, 1));
    let table = e.render_table();
    assert!(
        table.contains("MISSED") && table.contains("5 min") && table.contains("0.50 per 1,000"),
        "{table}"
    );
}
