//! Content-Security-Policy: how a page's policy changed between two
//! checks (PCI DSS 11.6.1 asks to detect a weakened security header), and
//! a policy suggested from what the page was seen to load and send.
//!
//! Hand-written: a policy is `;`-separated directives of space-separated
//! sources, and comparing two needs only that; no maintained crate parses
//! CSP for comparison.

use std::collections::BTreeMap;
use vakt_event::page::{origin_of, Inventory};

/// Directives that fall back to `default-src` when absent.
const FETCH_DIRECTIVES: [&str; 12] = [
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "img-src",
    "connect-src",
    "font-src",
    "object-src",
    "media-src",
    "frame-src",
    "child-src",
    "worker-src",
];

/// A policy as directive -> sources (lower case; nonces as `'nonce'`,
/// since they change on every response). Several policies joined with
/// `,` are read as one: the first occurrence of a directive wins.
pub fn parse(policy: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for directive in policy.split([';', ',']) {
        let mut words = directive.split_ascii_whitespace();
        let Some(name) = words.next() else { continue };
        let sources = words
            .map(|w| {
                let w = w.to_ascii_lowercase();
                if w.starts_with("'nonce-") {
                    "'nonce'".to_string()
                } else {
                    w
                }
            })
            .collect();
        out.entry(name.to_ascii_lowercase()).or_insert(sources);
    }
    out
}

/// How `new` allows more than `old`, one sentence each: a directive
/// dropped, or sources added to one (through `default-src` too). Empty
/// when `new` is as strict or stricter. Changed hashes (a new inline
/// script allowed) count: they let new code run.
pub fn weakened(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (parse(old), parse(new));
    let effective = |p: &BTreeMap<String, Vec<String>>, d: &str| -> Option<Vec<String>> {
        p.get(d).cloned().or_else(|| {
            FETCH_DIRECTIVES
                .contains(&d)
                .then(|| p.get("default-src").cloned())
                .flatten()
        })
    };
    let mut out = Vec::new();
    for (directive, sources) in &old {
        if directive == "report-uri" || directive == "report-to" {
            if !new.contains_key(directive) {
                out.push(format!(
                    "{directive} was removed: violations are no longer reported"
                ));
            }
            continue;
        }
        match effective(&new, directive) {
            None => out.push(format!("{directive} was removed")),
            Some(now) => {
                let added: Vec<&str> = now
                    .iter()
                    .filter(|s| !sources.contains(s))
                    .map(String::as_str)
                    .collect();
                if !added.is_empty() {
                    out.push(format!("{directive} now also allows {}", added.join(" ")));
                }
            }
        }
    }
    out
}

/// What a policy suggestion is built from.
pub struct Suggestion<'a> {
    /// The page's URL (its origin is `'self'`).
    pub page: &'a str,
    /// Where violation reports go: `vakt serve`'s `/v1/csp-report`.
    pub report_uri: &'a str,
}

/// A policy allowing what the page's last check saw, and nothing else, for
/// the directives a skimmer needs: scripts (origins, and the inline ones
/// by hash), where data may be sent (`connect-src`, `img-src`,
/// `form-action`), plus `object-src 'none'` and `base-uri 'self'`.
/// Violations are reported to `report_uri`. With an `https` one, through
/// the Reporting API too (`report-to vakt`, with the
/// [`reporting_endpoints`] header): browsers that have it then ignore
/// `report-uri`, kept for those without. With plain `http`, `report-uri`
/// only: Chromium sends Reporting API reports to HTTPS endpoints alone, and
/// a policy naming `report-to` makes it drop `report-uri`, so nothing
/// would be reported.
pub fn suggest(inv: &Inventory, s: &Suggestion) -> String {
    let own = origin_of(s.page);
    let last = inv.last.as_ref().map(|l| l.checked_at);
    let current = |seen| last.is_none_or(|t| seen >= t);
    let mut scripts: Vec<String> = Vec::new();
    let push = |list: &mut Vec<String>, v: String| {
        if v != own && !list.contains(&v) {
            list.push(v);
        }
    };
    for sc in inv.scripts.iter().filter(|x| current(x.last_seen)) {
        if sc.inline {
            push(&mut scripts, format!("'{}'", sc.sha384));
        } else {
            push(&mut scripts, origin_of(&sc.url));
        }
    }
    let (mut connect, mut img, mut form) = (Vec::new(), Vec::new(), Vec::new());
    for d in inv.destinations.iter().filter(|x| current(x.last_seen)) {
        for kind in d.kinds.split(',') {
            let list = match kind {
                "image" => &mut img,
                "form" => &mut form,
                _ => &mut connect,
            };
            push(list, d.origin.clone());
        }
    }
    let list = |v: &[String]| {
        let mut all = vec!["'self'".to_string()];
        all.extend(v.iter().cloned());
        all.join(" ")
    };
    let report_to = if uses_reporting_api(s.report_uri) {
        "; report-to vakt"
    } else {
        ""
    };
    format!(
        "script-src {}; connect-src {}; img-src {} data:; form-action {}; object-src 'none'; base-uri 'self'; report-uri {}{report_to}",
        list(&scripts),
        list(&connect),
        list(&img),
        list(&form),
        s.report_uri
    )
}

/// Whether a suggested policy reports through the Reporting API too
/// (`report_uri` is HTTPS).
pub fn uses_reporting_api(report_uri: &str) -> bool {
    report_uri
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// The `Reporting-Endpoints` header value naming the `vakt` group of a
/// suggested policy's `report-to`.
pub fn reporting_endpoints(report_uri: &str) -> String {
    format!("vakt=\"{report_uri}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::page::{KnownDestination, KnownScript, LastCheck};
    use vakt_event::Timestamp;

    #[test]
    fn a_stricter_policy_is_not_weaker_and_a_looser_one_is_named() {
        let old =
            "default-src 'self'; script-src 'self' https://cdn.example 'nonce-abc'; report-uri /r";
        assert!(weakened(old, old).is_empty());
        assert!(
            weakened(
                old,
                "default-src 'self'; script-src 'self' 'nonce-xyz'; report-uri /r"
            )
            .is_empty(),
            "a fresh nonce and a source fewer are not weaker"
        );
        let w = weakened(old, "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.example; report-uri /r");
        assert_eq!(w, ["script-src now also allows 'unsafe-inline'"]);
        let w = weakened(old, "default-src *; report-uri /r");
        assert_eq!(
            w,
            [
                "default-src now also allows *",
                "script-src now also allows *"
            ]
        );
        let w = weakened(old, "default-src 'self'; script-src 'self'");
        assert_eq!(
            w,
            ["report-uri was removed: violations are no longer reported"]
        );
        let w = weakened("connect-src 'self'", "img-src 'self'");
        assert_eq!(w, ["connect-src was removed"]);
    }

    #[test]
    fn the_suggestion_allows_what_the_last_check_saw() {
        let at = Timestamp(5_000);
        let script = |url: &str, inline: bool, sha: &str, seen: i64| KnownScript {
            page: "https://shop.example/pay".into(),
            url: url.into(),
            inline,
            sha384: sha.into(),
            last_seen: Timestamp(seen),
            ..Default::default()
        };
        let inv = Inventory {
            scripts: vec![
                script("https://shop.example/app.js", false, "sha384-a", 5_000),
                script("https://shop.example/pay", true, "sha384-inl", 5_000),
                script("https://chat.vendor.example/w.js", false, "sha384-c", 5_000),
                script("https://old.example/gone.js", false, "sha384-o", 1_000),
            ],
            destinations: vec![KnownDestination {
                origin: "https://px.example".into(),
                kinds: "beacon,image".into(),
                last_seen: at,
                ..Default::default()
            }],
            last: Some(LastCheck {
                checked_at: at,
                ..Default::default()
            }),
        };
        let csp = suggest(
            &inv,
            &Suggestion {
                page: "https://shop.example/pay",
                report_uri: "https://vakt.example/v1/csp-report",
            },
        );
        assert_eq!(
            csp,
            "script-src 'self' 'sha384-inl' https://chat.vendor.example; connect-src 'self' https://px.example; img-src 'self' https://px.example data:; form-action 'self'; object-src 'none'; base-uri 'self'; report-uri https://vakt.example/v1/csp-report; report-to vakt"
        );
        let plain = suggest(
            &inv,
            &Suggestion {
                page: "https://shop.example/pay",
                report_uri: "http://127.0.0.1:8480/v1/csp-report",
            },
        );
        assert!(
            plain.ends_with("report-uri http://127.0.0.1:8480/v1/csp-report"),
            "no report-to to a plain-HTTP endpoint: {plain}"
        );
    }
}
