//! What one check of a payment page saw (S6; PCI DSS 6.4.3 and 11.6.1):
//! the scripts that ran with their SHA-384, the requests the page made and
//! who made them, and the security headers. `vakt-pages` fills it from a
//! headless browser; the ledger keeps the inventory built from it; the
//! page-integrity comparison reads it against that inventory.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use toml::Spanned;

/// Rule name of alerts about a page's scripts, destinations and headers.
pub const RULE: &str = "page_integrity";
/// Rule name of alerts about a check that could not be made (timeout,
/// error status, redirect to another origin, browser failure).
pub const CHECK_RULE: &str = "page_check_failed";

/// Request kinds that carry data out of a page: the destinations of its
/// inventory (a script, a style sheet or a font fetched is not one:
/// scripts have their own inventory).
pub const SENDING_KINDS: [&str; 7] = [
    "fetch",
    "xhr",
    "beacon",
    "image",
    "websocket",
    "form",
    "other",
];

/// Who loaded a script or made a request.
pub const BY_PAGE: &str = "page";

/// One check of one page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageSnapshot {
    /// The page's URL as configured.
    pub url: String,
    /// Where the browser ended up after redirects.
    pub final_url: String,
    /// HTTP status of the main document (none: no response).
    pub status: Option<u16>,
    pub checked_at: Timestamp,
    /// Wall time of the check, browser start to browser exit.
    pub took_ms: u64,
    /// Scripts that ran: external ones and inline ones, in load order.
    pub scripts: Vec<ScriptSeen>,
    /// Every request the page made after its own document.
    pub requests: Vec<RequestSeen>,
    /// The `<script>` tags in the document once it settled.
    pub script_tags: Vec<ScriptTag>,
    /// `Content-Security-Policy` of the main document (headers joined by `, `).
    pub csp: Option<String>,
    /// `Content-Security-Policy-Report-Only` of the main document.
    pub csp_report_only: Option<String>,
    /// Canary values typed into the page's form fields (none: not filled).
    pub canaries: Vec<String>,
    /// Largest resident memory of the browser's processes together during
    /// the check, in bytes (sampled; proportional set size, so shared
    /// code is counted once).
    pub browser_peak_rss: u64,
    /// Requests and scripts past a check's caps (20,000 and 2,000), not
    /// recorded.
    #[serde(default)]
    pub dropped: u64,
}

/// One script that ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptSeen {
    /// Its URL; for an inline script the page's URL.
    pub url: String,
    pub inline: bool,
    /// `sha384-` and the base64 digest, as SRI and CSP write it.
    pub sha384: String,
    pub bytes: u64,
    /// [`BY_PAGE`], or the URL of the script that loaded it.
    pub loaded_by: String,
    /// The content as text (for a summary of a change), up to
    /// `SOURCE_LIMIT` bytes; none past it.
    pub source: Option<String>,
}

/// Largest script content kept for diffs: 1 MiB.
pub const SOURCE_LIMIT: usize = 1 << 20;

/// One request the page made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSeen {
    pub url: String,
    pub method: String,
    /// `script`, `fetch`, `xhr`, `beacon`, `image`, `websocket`, `form`,
    /// `stylesheet`, `font`, `document`, `other`.
    pub kind: String,
    /// [`BY_PAGE`], or the URL of the script that made it.
    pub initiator: String,
    /// The request body, up to 64 KiB (canary search).
    pub body: Option<String>,
    /// Why the browser did not send it (`csp`, ...), if it did not.
    pub blocked: Option<String>,
}

/// A `<script>` element as the document holds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptTag {
    /// The absolute `src`; none for an inline script.
    pub src: Option<String>,
    /// The `integrity` attribute, if any.
    pub integrity: Option<String>,
}

/// What the ledger knows of one page: every script version and
/// destination seen, and the headers of the last check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub scripts: Vec<KnownScript>,
    pub destinations: Vec<KnownDestination>,
    /// None: the page was never checked (the next check is its baseline).
    pub last: Option<LastCheck>,
}

/// One version of one script of a page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnownScript {
    pub page: String,
    pub url: String,
    pub inline: bool,
    pub sha384: String,
    pub bytes: u64,
    pub loaded_by: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// One origin a page sent requests to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnownDestination {
    pub page: String,
    pub origin: String,
    /// Request kinds seen, comma-separated (`beacon,image`).
    pub kinds: String,
    /// The script (or page) that first sent to it.
    pub initiator: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// The headers of a page's last successful check, to compare the next one with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastCheck {
    pub final_url: String,
    pub csp: Option<String>,
    pub csp_report_only: Option<String>,
    /// Script tags with their `integrity` attribute, as `[src, integrity]`.
    pub sri: Vec<(String, String)>,
    pub checked_at: Timestamp,
}

impl Inventory {
    /// The look-ups a check makes, built once: a check compares up to
    /// thousands of scripts and requests with an inventory that only grows.
    pub fn known(&self) -> Known<'_> {
        let mut latest: HashMap<&str, &KnownScript> = HashMap::new();
        for s in self.scripts.iter().filter(|s| !s.inline) {
            let newest = latest.entry(s.url.as_str()).or_insert(s);
            if s.last_seen > newest.last_seen {
                *newest = s;
            }
        }
        Known {
            scripts: self
                .scripts
                .iter()
                .map(|s| {
                    (
                        if s.inline { "" } else { s.url.as_str() },
                        s.inline,
                        s.sha384.as_str(),
                    )
                })
                .collect(),
            script_origins: latest.keys().map(|u| origin_of(u)).collect(),
            destinations: self
                .destinations
                .iter()
                .map(|d| d.origin.as_str())
                .collect(),
            latest,
        }
    }
}

/// An [`Inventory`]'s look-ups.
pub struct Known<'a> {
    /// (URL, or "" for an inline script; inline; SHA-384).
    scripts: HashSet<(&'a str, bool, &'a str)>,
    script_origins: HashSet<String>,
    destinations: HashSet<&'a str>,
    latest: HashMap<&'a str, &'a KnownScript>,
}

impl<'a> Known<'a> {
    /// The newest known version of a script URL (external scripts).
    pub fn latest(&self, url: &str) -> Option<&'a KnownScript> {
        self.latest.get(url).copied()
    }

    pub fn script(&self, url: &str, inline: bool, sha384: &str) -> bool {
        let url = if inline { "" } else { url };
        self.scripts.contains(&(url, inline, sha384))
    }

    pub fn script_origin(&self, origin: &str) -> bool {
        self.script_origins.contains(origin)
    }

    pub fn destination(&self, origin: &str) -> bool {
        self.destinations.contains(origin)
    }
}

/// Why a page could not be checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum CheckFailure {
    #[error("the page did not finish loading within {0} s")]
    Timeout(u64),
    #[error("the page answered HTTP {0}")]
    Status(u16),
    #[error("the page could not be reached: {0}")]
    Unreachable(String),
    #[error("the browser failed: {0}")]
    Browser(String),
}

/// `scheme://host[:port]` of a URL, lower case, or the URL itself when it
/// has no authority (`data:`, `blob:`, ...).
pub fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.split(':').next().unwrap_or(url).to_ascii_lowercase();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let scheme = scheme.to_ascii_lowercase();
    let mut hostport = hostport.to_ascii_lowercase();
    // One origin, one spelling: the scheme's default port is left out, as
    // browsers write it, so `:443` written in a directory matches too.
    let default = match scheme.as_str() {
        "https" | "wss" => ":443",
        "http" | "ws" => ":80",
        _ => "",
    };
    if !default.is_empty() && hostport.ends_with(default) {
        hostport.truncate(hostport.len() - default.len());
    }
    format!("{scheme}://{hostport}")
}

/// The host of a URL (no port), lower case.
pub fn host_of(url: &str) -> String {
    let origin = origin_of(url);
    let hostport = origin.split_once("://").map_or("", |(_, h)| h);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_owned();
    }
    hostport.split(':').next().unwrap_or("").to_owned()
}

/// A `[[page]]` of the directory: a page to watch, how often, how to
/// reach it, and what it is expected to load.
///
/// ```toml
/// [[page]]
/// url = "https://shop.example/checkout"
/// every = "1h"                 # how often `vakt serve` checks it (s, m, h, d)
/// timeout = "15s"              # a check slower than this fails
/// fill = true                  # type canary values into the form fields
/// destinations = ["https://analytics.example"]   # where it may send data
/// cookies = [{ name = "session", value_env = "SHOP_SESSION" }]
///
/// [[page.step]]                # sign-in before the page, in order
/// goto = "https://shop.example/login"
/// [[page.step]]
/// fill = "#user"
/// value = "monitor"
/// [[page.step]]
/// fill = "#password"
/// value_env = "SHOP_PASSWORD"
/// [[page.step]]
/// click = "#sign-in"
///
/// [[page.script]]
/// url = "https://chat.vendor.example/*"   # `*` matches any run of characters
/// justification = "customer chat, vendor contract 2026-14"
/// may_change = true            # false (default): any change of content alerts
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageEntry {
    pub url: Spanned<String>,
    #[serde(default)]
    pub every: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub fill: bool,
    #[serde(default)]
    pub destinations: Vec<Spanned<String>>,
    #[serde(default)]
    pub cookies: Vec<PageCookie>,
    #[serde(default, rename = "step")]
    pub steps: Vec<PageStep>,
    #[serde(default, rename = "script")]
    pub scripts: Vec<ExpectedScript>,
    /// `every` in milliseconds (default [`DEFAULT_EVERY_MS`]).
    #[serde(skip)]
    pub every_ms: i64,
    /// `timeout` in milliseconds (default [`DEFAULT_TIMEOUT_MS`]).
    #[serde(skip)]
    pub timeout_ms: i64,
    #[serde(skip)]
    pub base: usize,
}

/// A page is checked hourly unless its entry says otherwise (PCI DSS
/// 11.6.1 asks for weekly at least).
pub const DEFAULT_EVERY_MS: i64 = 3_600_000;
/// A check gives up on a page after 15 s unless its entry says otherwise.
pub const DEFAULT_TIMEOUT_MS: i64 = 15_000;
/// Longest `timeout` a page may have: 2 minutes.
pub const MAX_TIMEOUT_MS: i64 = 120_000;

/// A cookie set before the page loads, its value given or read from the
/// environment (so secrets stay out of the directory).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageCookie {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_env: Option<String>,
}

/// One sign-in step: exactly one of `goto`, `fill` (with `value` or
/// `value_env`), `click`, `wait_for`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageStep {
    #[serde(default)]
    pub goto: Option<String>,
    #[serde(default)]
    pub fill: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_env: Option<String>,
    #[serde(default)]
    pub click: Option<String>,
    #[serde(default)]
    pub wait_for: Option<String>,
}

/// A script the page is expected to load, with why (PCI DSS 6.4.3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedScript {
    /// The script's URL; `*` matches any run of characters; `inline`
    /// matches the page's inline scripts.
    pub url: Spanned<String>,
    pub justification: String,
    /// Whether its content may change without an alert (a script served
    /// under a fixed, versioned name may not).
    #[serde(default)]
    pub may_change: bool,
}

impl ExpectedScript {
    /// Whether this entry covers a script (`inline` for inline ones).
    pub fn matches(&self, url: &str, inline: bool) -> bool {
        let pattern = self.url.get_ref();
        if pattern == "inline" {
            return inline;
        }
        !inline && wildcard(pattern, url)
    }
}

impl PageEntry {
    /// The entry that covers a script, if any.
    pub fn expected(&self, url: &str, inline: bool) -> Option<&ExpectedScript> {
        self.scripts.iter().find(|s| s.matches(url, inline))
    }

    /// Whether a destination (a request's URL) is listed in `destinations`:
    /// an entry is an origin (`https://analytics.example`), a host, or a
    /// pattern with `*`.
    pub fn destination_listed(&self, url: &str) -> bool {
        let origin = origin_of(url);
        let host = host_of(url);
        self.destinations.iter().any(|d| {
            let d = d.get_ref().trim().to_ascii_lowercase();
            if d.contains('*') {
                wildcard(&d, &origin) || wildcard(&d, &host) || wildcard(&d, url)
            } else {
                (d.contains("://") && origin_of(&d) == origin) || d == host
            }
        })
    }

    /// Checks the entry (called by the directory's loader): URLs, times,
    /// steps and cookies; the message says what to change.
    pub(crate) fn check(&mut self) -> Result<(), (usize, String)> {
        let url = self.url.get_ref();
        if !(url.starts_with("https://") || url.starts_with("http://")) || host_of(url).is_empty() {
            return Err((self.url.span().start, format!("page url `{url}` is not an http(s) URL; write it in full, e.g. \"https://shop.example/checkout\"")));
        }
        self.every_ms = match &self.every {
            None => DEFAULT_EVERY_MS,
            Some(e) => crate::directory::parse_ttl(e.get_ref()).ok_or((
                e.span().start,
                format!(
                    "every = `{}` is not a duration; write e.g. \"30m\", \"1h\" or \"7d\"",
                    e.get_ref()
                ),
            ))?,
        };
        self.timeout_ms = match &self.timeout {
            None => DEFAULT_TIMEOUT_MS,
            Some(t) => match crate::directory::parse_ttl(t.get_ref()) {
                Some(ms) if ms <= MAX_TIMEOUT_MS => ms,
                _ => {
                    return Err((
                        t.span().start,
                        format!(
                        "timeout = `{}` is not a duration of at most 2 minutes; write e.g. \"15s\"",
                        t.get_ref()
                    ),
                    ))
                }
            },
        };
        for (i, s) in self.steps.iter().enumerate() {
            let n = i + 1;
            let set = [
                s.goto.is_some(),
                s.fill.is_some(),
                s.click.is_some(),
                s.wait_for.is_some(),
            ];
            if set.iter().filter(|x| **x).count() != 1 {
                return Err((self.url.span().start, format!("page `{url}` step {n} must have exactly one of goto, fill, click, wait_for")));
            }
            if s.fill.is_some() && s.value.is_some() == s.value_env.is_some() {
                return Err((self.url.span().start, format!("page `{url}` step {n} fills a field: give it exactly one of value, value_env")));
            }
            if s.fill.is_none() && (s.value.is_some() || s.value_env.is_some()) {
                return Err((self.url.span().start, format!("page `{url}` step {n} has a value but fills no field; add fill = \"SELECTOR\"")));
            }
        }
        for c in &self.cookies {
            if c.value.is_some() == c.value_env.is_some() {
                return Err((
                    self.url.span().start,
                    format!(
                        "page `{url}` cookie `{}`: give it exactly one of value, value_env",
                        c.name
                    ),
                ));
            }
        }
        for d in &self.destinations {
            if d.get_ref().trim().is_empty() {
                return Err((d.span().start, "an empty destination; give an origin such as \"https://analytics.example\" or a host".into()));
            }
        }
        for s in &self.scripts {
            if s.url.get_ref().trim().is_empty() {
                return Err((
                    s.url.span().start,
                    "an empty script url; give the script's URL, a pattern with `*`, or \"inline\""
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters (case-insensitive, iterative: no backtracking blow-up).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_hosts() {
        assert_eq!(
            origin_of("HTTPS://Pay.Example:8443/x?y#z"),
            "https://pay.example:8443"
        );
        assert_eq!(
            origin_of("https://u:p@cdn.example/a.js"),
            "https://cdn.example"
        );
        assert_eq!(origin_of("data:text/plain,hi"), "data");
        assert_eq!(
            origin_of("https://Shop.Example:443/pay"),
            "https://shop.example"
        );
        assert_eq!(origin_of("http://[::1]:80/p"), "http://[::1]");
        assert_eq!(
            origin_of("http://shop.example:8080/"),
            "http://shop.example:8080"
        );
        assert_eq!(host_of("http://127.0.0.1:9000/p"), "127.0.0.1");
        assert_eq!(host_of("http://[::1]:9000/p"), "::1");
        assert_eq!(
            host_of("wss://chat.vendor.example/ws"),
            "chat.vendor.example"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(
            "https://cdn.example/app.*.js",
            "https://cdn.example/app.3f2a.js"
        ));
        assert!(!wildcard(
            "https://cdn.example/app.*.js",
            "https://cdn.example/app.js"
        ));
        assert!(wildcard("*", ""));
        assert!(wildcard("HTTPS://A.example/*", "https://a.example/x/y"));
        assert!(!wildcard("https://a.example/*", "https://a.example.evil/x"));
        // Many stars on a long text stay linear enough to finish at once.
        let long = "a".repeat(5_000);
        assert!(!wildcard(
            &"*a"
                .repeat(50)
                .chars()
                .chain("b".chars())
                .collect::<String>(),
            &long
        ));
    }
}
