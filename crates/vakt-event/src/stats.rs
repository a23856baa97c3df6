//! Order statistics shared by the detectors, the API, the console and the
//! benches: one quantile and one "usual range" of an actor's hours.
//!
//! They live here, in the bottom crate, because every crate that computes
//! or shows a baseline (vakt-detect, vakt-server, the binary) already
//! depends on vakt-event and on nothing else in common; two copies drift
//! (the API and the console once drew different bands for one alert).

use crate::time::{DAY, HOUR};
use crate::Timestamp;

/// The value at fraction `q` (clamped to 0..=1) of the ascending `sorted`,
/// by nearest rank: the element at position `q * (len - 1)` rounded half
/// away from zero, so `q = 0` is the minimum, `1` the maximum and `0.5` the
/// median (the upper middle of an even count). No interpolation, so the
/// answer is always one of the values. `T::default()` (zero) when empty.
///
/// The detectors' thresholds depend on this exact rank; changing it
/// changes what they alert on.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    match sorted.len() {
        0 => T::default(),
        n => sorted[((n - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize],
    }
}

/// How many days before an alert its actor's usual range is read from.
pub const USUAL_RANGE_DAYS: i64 = 7;

/// An actor's usual hour before an alert: the median and 90th percentile
/// of the accesses per active hour (an hour with at least one access) in
/// the [`USUAL_RANGE_DAYS`] before the alert's hour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsualRange {
    pub active_hours: usize,
    pub median: u64,
    pub p90: u64,
}

/// The first hour the usual range before an alert first seen at `alert`
/// reads: callers fetch hours from here (or earlier) up to the alert.
pub fn usual_range_since(alert: Timestamp) -> Timestamp {
    alert.floor(HOUR).saturating_add(-USUAL_RANGE_DAYS * DAY)
}

/// The usual range over `hours` (start of the hour, accesses), of the
/// active hours in `[usual_range_since(alert), alert's hour)`; hours
/// outside that window and idle hours are ignored, so a caller may pass a
/// wider chart. `None` when the actor had no active hour in the window.
pub fn usual_range(hours: &[(Timestamp, u64)], alert: Timestamp) -> Option<UsualRange> {
    let (since, until) = (usual_range_since(alert), alert.floor(HOUR));
    let mut v: Vec<u64> = hours
        .iter()
        .filter(|(t, n)| *t >= since && *t < until && *n > 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(UsualRange {
        active_hours: v.len(),
        median: quantile(&v, 0.5),
        p90: quantile(&v, 0.9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_picks_the_nearest_ranked_value() {
        let v = [1u32, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&v, 0.5), 6);
        assert_eq!(quantile(&v, 0.9), 9);
        assert_eq!(quantile(&v, 1.0), 10);
        assert_eq!(quantile(&v, 7.0), 10);
        assert_eq!(quantile(&[2.5f64, 4.0], 0.5), 4.0);
        assert_eq!(quantile::<u64>(&[], 0.5), 0);
    }

    #[test]
    fn usual_range_reads_active_hours_of_the_week_before_the_alert_hour() {
        let alert = Timestamp(100 * DAY + 10 * HOUR + 20 * 60_000);
        let h = |days_before: i64, n: u64| (alert.floor(HOUR).saturating_add(-days_before), n);
        let hours = [
            h(8 * DAY, 1_000), // before the window
            h(7 * DAY, 4),     // its first hour
            h(3 * DAY, 0),     // idle: not an active hour
            h(2 * DAY, 2),
            h(HOUR, 6),
            h(0, 500), // the alert's own hour
            h(-HOUR, 700),
        ];
        assert_eq!(
            usual_range(&hours, alert),
            Some(UsualRange {
                active_hours: 3,
                median: 4,
                p90: 6
            })
        );
        assert_eq!(usual_range(&hours[5..], alert), None);
    }
}
