//! The notification clocks of a personal-data breach: which authority must
//! hear of it by when, under each regime a directory names.
//!
//! - `gdpr`: GDPR Art. 33(1), the supervisory authority within 72 hours of
//!   becoming aware; later, with the reasons for the delay.
//! - `telecom`: Commission Regulation (EU) No 611/2013 Art. 2(2), the
//!   competent national authority within 24 hours of detection, where
//!   feasible (providers of public electronic communications services).
//! - `nis2`: Directive (EU) 2022/2555 Art. 23(4), an early warning within
//!   24 hours of becoming aware, an incident notification within 72 hours,
//!   a final report within one month of the incident notification.
//!
//! Every clock runs from the moment the company became aware, which a
//! person records when marking the incident a breach; a step that follows
//! another (NIS2's final report) runs from when that one was done, or from
//! its deadline while it is not.

use crate::Timestamp;
use chrono::{DateTime, Months, Utc};
use serde::Serialize;

const HOUR_MS: i64 = 3_600_000;

/// A notification regime.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    Gdpr,
    Telecom,
    Nis2,
}

/// When a step is due.
#[derive(Copy, Clone, Debug)]
enum Due {
    /// This many hours after awareness.
    Hours(i64),
    /// A calendar month after the step `id` was done (or was due).
    MonthAfter(&'static str),
}

/// One notification a regime asks for.
#[derive(Copy, Clone, Debug)]
pub struct Step {
    /// `gdpr.art33`, `nis2.early_warning`: how a person marks it done.
    pub id: &'static str,
    pub regime: Regime,
    /// For people: "GDPR Art. 33: supervisory authority".
    pub title: &'static str,
    due: Due,
}

const STEPS: [Step; 5] = [
    Step {
        id: "gdpr.art33",
        regime: Regime::Gdpr,
        title: "GDPR Art. 33: the supervisory authority",
        due: Due::Hours(72),
    },
    Step {
        id: "telecom.authority",
        regime: Regime::Telecom,
        title: "Regulation 611/2013: the national authority",
        due: Due::Hours(24),
    },
    Step {
        id: "nis2.early_warning",
        regime: Regime::Nis2,
        title: "NIS2 Art. 23: early warning",
        due: Due::Hours(24),
    },
    Step {
        id: "nis2.notification",
        regime: Regime::Nis2,
        title: "NIS2 Art. 23: incident notification",
        due: Due::Hours(72),
    },
    Step {
        id: "nis2.final_report",
        regime: Regime::Nis2,
        title: "NIS2 Art. 23: final report",
        due: Due::MonthAfter("nis2.notification"),
    },
];

impl Regime {
    pub const ALL: [Regime; 3] = [Regime::Gdpr, Regime::Telecom, Regime::Nis2];

    pub fn as_str(self) -> &'static str {
        match self {
            Regime::Gdpr => "gdpr",
            Regime::Telecom => "telecom",
            Regime::Nis2 => "nis2",
        }
    }

    pub fn parse(s: &str) -> Option<Regime> {
        Regime::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The steps of this regime, in order.
    pub fn steps(self) -> impl Iterator<Item = &'static Step> {
        STEPS.iter().filter(move |s| s.regime == self)
    }
}

/// Whether `id` names a step of any regime.
pub fn is_step(id: &str) -> bool {
    STEPS.iter().any(|s| s.id == id)
}

/// One running (or finished) clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clock {
    pub step: &'static str,
    pub regime: Regime,
    pub title: &'static str,
    pub due: Timestamp,
    /// When a person marked it done.
    pub done: Option<Timestamp>,
    /// Milliseconds left at `now` (negative: overdue); for a done step,
    /// what was left when it was done.
    pub left_ms: i64,
    /// How much of its time had passed at `now` (or when done): 0 at
    /// awareness, 1 at the deadline, above 1 overdue.
    pub used: f64,
}

impl Clock {
    pub fn overdue(&self) -> bool {
        self.left_ms < 0
    }
}

fn month_after(t: Timestamp) -> Timestamp {
    DateTime::<Utc>::from_timestamp_millis(t.0)
        .and_then(|d| d.checked_add_months(Months::new(1)))
        .map_or(Timestamp(t.0.saturating_add(30 * 24 * HOUR_MS)), |d| {
            Timestamp(d.timestamp_millis())
        })
}

/// The clocks of `regimes` for a breach the company became aware of at
/// `aware`, with the steps people marked done, at `now`.
pub fn clocks(
    regimes: &[Regime],
    aware: Timestamp,
    done: &dyn Fn(&str) -> Option<Timestamp>,
    now: Timestamp,
) -> Vec<Clock> {
    let mut out: Vec<Clock> = Vec::new();
    for regime in regimes {
        for step in regime.steps() {
            let (start, due) = match step.due {
                Due::Hours(h) => (aware, Timestamp(aware.0.saturating_add(h * HOUR_MS))),
                Due::MonthAfter(prev) => {
                    let from = done(prev)
                        .or_else(|| out.iter().find(|c| c.step == prev).map(|c| c.due))
                        .unwrap_or(aware);
                    (from, month_after(from))
                }
            };
            let finished = done(step.id);
            let at = finished.unwrap_or(now);
            let span = (due.0 - start.0).max(1) as f64;
            out.push(Clock {
                step: step.id,
                regime: *regime,
                title: step.title,
                due,
                done: finished,
                left_ms: due.0 - at.0,
                used: (at.0 - start.0) as f64 / span,
            });
        }
    }
    out
}

/// The rule of the alerts that warn as a clock runs.
pub const RULE: &str = "notification_deadline";

/// Fractions of a clock's time at which vakt warns, by default.
pub const WARN_AT: [f64; 3] = [0.5, 0.75, 0.9];

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn each_regime_runs_its_clocks_from_awareness() {
        let aware = t("2026-11-02T10:00:00Z");
        let now = t("2026-11-03T04:00:00Z");
        let none = |_: &str| None;
        let all = clocks(&Regime::ALL, aware, &none, now);
        let due: Vec<(&str, String)> = all.iter().map(|c| (c.step, c.due.to_string())).collect();
        assert_eq!(
            due,
            [
                ("gdpr.art33", "2026-11-05T10:00:00.000Z".into()),
                ("telecom.authority", "2026-11-03T10:00:00.000Z".into()),
                ("nis2.early_warning", "2026-11-03T10:00:00.000Z".into()),
                ("nis2.notification", "2026-11-05T10:00:00.000Z".into()),
                // A month after the notification's deadline while it is not sent.
                ("nis2.final_report", "2026-12-05T10:00:00.000Z".into()),
            ]
        );
        let telecom = &all[1];
        assert_eq!(telecom.left_ms, 6 * HOUR_MS);
        assert!((telecom.used - 0.75).abs() < 1e-9);
        assert!(!telecom.overdue());
        let late = clocks(&[Regime::Telecom], aware, &none, t("2026-11-03T11:00:00Z"));
        assert!(late[0].overdue());
    }

    #[test]
    fn a_done_step_stops_its_clock_and_starts_the_next() {
        let aware = t("2026-11-02T10:00:00Z");
        let sent = t("2026-11-03T10:00:00Z");
        let done = |id: &str| (id == "nis2.notification").then_some(sent);
        let c = clocks(&[Regime::Nis2], aware, &done, t("2026-11-20T00:00:00Z"));
        assert_eq!(c[1].done, Some(sent));
        assert_eq!(c[1].left_ms, 48 * HOUR_MS, "what was left when it was sent");
        assert_eq!(
            c[2].due,
            t("2026-12-03T10:00:00Z"),
            "a calendar month after it was sent"
        );
        assert!(c[0].overdue(), "the early warning was never marked sent");
    }
}
