//! The alert page's activity chart: accesses per hour as inline SVG,
//! with the actor's usual range ([`vakt_event::stats::usual_range`], as
//! the API gives it) as a band and the alert time marked.
//!
//! Written with `maud`, which escapes every value it is given unless
//! told otherwise.

use maud::{html, Markup};
use vakt_event::stats::{UsualRange, USUAL_RANGE_DAYS};
use vakt_event::Timestamp;

const W: f64 = 960.0;
const H: f64 = 220.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 24.0;
const PAD_T: f64 = 16.0;

/// The usual range in words, for the band's tooltip and the sentence
/// under the chart.
pub(crate) fn describe(u: &UsualRange) -> String {
    format!(
        "{} to {} accesses (median to 90th percentile of its {} active hour(s) in the {USUAL_RANGE_DAYS} days before the alert)",
        u.median, u.p90, u.active_hours
    )
}

/// The chart of `hours` (oldest first), with `usual` as its band.
pub(crate) fn svg(
    hours: &[(Timestamp, u64)],
    usual: Option<&UsualRange>,
    first: Timestamp,
    last: Timestamp,
) -> Markup {
    let n = hours.len().max(1);
    let max = hours.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1) as f64;
    let plot_w = W - PAD_L - 8.0;
    let plot_h = H - PAD_T - PAD_B;
    let bw = plot_w / n as f64;
    let y = |c: f64| PAD_T + plot_h - c / max * plot_h;
    let x_of = |t: Timestamp| {
        let t0 = hours.first().map(|h| h.0 .0).unwrap_or(0);
        PAD_L + (t.0 - t0) as f64 / 3_600_000.0 * bw
    };
    // Coordinates to one decimal, as SVG attributes.
    let f1 = |v: f64| format!("{v:.1}");
    let base = PAD_T + plot_h;
    let ax = x_of(first);
    html! {
        svg id="timeline" data-points=(hours.len()) viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label="accesses per hour" xmlns="http://www.w3.org/2000/svg" {
            @if let Some(u) = usual {
                @let (top, bottom) = (y(u.p90 as f64), y(u.median as f64));
                rect class="band" x=(PAD_L) y=(f1(top)) width=(f1(plot_w)) height=(f1((bottom - top).max(1.5)))
                    data-median=(u.median) data-p90=(u.p90) {
                    title { "usual hour: " (describe(u)) }
                }
            }
            line class="axis" x1=(PAD_L) y1=(f1(base)) x2=(f1(W - 8.0)) y2=(f1(base)) {}
            text x=(PAD_L - 4.0) y=(f1(PAD_T + 8.0)) text-anchor="end" { (max as u64) }
            text x=(PAD_L - 4.0) y=(f1(base)) text-anchor="end" { "0" }
            @for (i, (t, c)) in hours.iter().enumerate() {
                @let x = PAD_L + i as f64 * bw;
                @let label = format!("{} {c} accesses", &t.to_rfc3339()[..13].replace('T', " "));
                @if t.0 % 86_400_000 == 0 {
                    line class="axis" x1=(f1(x)) y1=(PAD_T) x2=(f1(x)) y2=(f1(base)) {}
                    text x=(f1(x + 2.0)) y=(f1(H - 6.0)) { (&t.to_rfc3339()[5..10]) }
                }
                @let h = (base - y(*c as f64)).max(if *c > 0 { 1.0 } else { 0.0 });
                @let class = if *t >= first.floor(3_600_000) && *t <= last { "bar after" } else { "bar" };
                rect class=(class) x=(f1(x)) y=(f1(base - h)) width=(format!("{:.2}", (bw - 0.6).max(0.6)))
                    height=(f1(h)) data-v=(label) {
                    title { (label) }
                }
            }
            line class="alert" x1=(f1(ax)) y1=(PAD_T) x2=(f1(ax)) y2=(f1(base)) {}
            text class="alert-label" x=(f1(ax + 3.0)) y=(f1(PAD_T + 2.0)) {
                "alert " (first.to_rfc3339()[..16].replace('T', " "))
            }
        }
    }
}
