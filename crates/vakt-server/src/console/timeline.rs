//! The alert page's activity chart: accesses per hour as inline SVG,
//! with the actor's usual range ([`vakt_event::stats::usual_range`], as
//! the API gives it) as a band and the alert time marked.

use super::html::esc;
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
) -> String {
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
    let mut s = format!(
        "<svg id=\"timeline\" data-points=\"{}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"accesses per hour\" xmlns=\"http://www.w3.org/2000/svg\">",
        hours.len()
    );
    if let Some(u) = usual {
        let (top, bottom) = (y(u.p90 as f64), y(u.median as f64));
        s += &format!(
            "<rect class=\"band\" x=\"{PAD_L}\" y=\"{top:.1}\" width=\"{plot_w:.1}\" height=\"{:.1}\" data-median=\"{}\" data-p90=\"{}\"><title>usual hour: {}</title></rect>",
            (bottom - top).max(1.5),
            u.median,
            u.p90,
            esc(&describe(u))
        );
    }
    s += &format!(
        "<line class=\"axis\" x1=\"{PAD_L}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text><text x=\"{2}\" y=\"{0:.1}\" text-anchor=\"end\">0</text>",
        PAD_T + plot_h,
        W - 8.0,
        PAD_L - 4.0,
        PAD_T + 8.0,
        max as u64
    );
    for (i, (t, c)) in hours.iter().enumerate() {
        let x = PAD_L + i as f64 * bw;
        let label = format!("{} {c} accesses", &t.to_rfc3339()[..13].replace('T', " "));
        if t.0 % 86_400_000 == 0 {
            s += &format!(
                "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{PAD_T}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                PAD_T + plot_h,
                x + 2.0,
                H - 6.0,
                esc(&t.to_rfc3339()[5..10])
            );
        }
        let h = (PAD_T + plot_h - y(*c as f64)).max(if *c > 0 { 1.0 } else { 0.0 });
        let class = if *t >= first.floor(3_600_000) && *t <= last {
            "bar after"
        } else {
            "bar"
        };
        s += &format!(
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{h:.1}\" data-v=\"{}\"><title>{}</title></rect>",
            PAD_T + plot_h - h,
            (bw - 0.6).max(0.6),
            esc(&label),
            esc(&label)
        );
    }
    let ax = x_of(first);
    s += &format!(
        "<line class=\"alert\" x1=\"{ax:.1}\" y1=\"{PAD_T}\" x2=\"{ax:.1}\" y2=\"{:.1}\"/><text class=\"alert-label\" x=\"{:.1}\" y=\"{:.1}\">alert {}</text>",
        PAD_T + plot_h,
        ax + 3.0,
        PAD_T + 2.0,
        esc(&first.to_rfc3339()[..16].replace('T', " "))
    );
    s += "</svg>";
    s
}
