//! The directory's `[[http.route]]` patterns, compiled: which action a web
//! request is and which customer it names. Shared by the web-log parsers
//! and the HTTP proxy, so a route means the same in a log and inline.
//!
//! A path is matched in the form a web server resolves it to, not as
//! written: `/api/v1/customers/C-100%31` is a read of `C-1001`, and so is
//! `//api/v1/x/../customers/./C-1001`. [`RequestPath`] decodes percent
//! escapes, drops `.` segments and empty ones (repeated slashes) and
//! resolves `..`, as nginx does; the HTTP proxy then forwards the
//! [canonical](RequestPath::canonical) form it recorded, so the upstream
//! serves what the ledger says was read, whatever the upstream's own rules.
//!
//! Forms that servers resolve differently are refused rather than guessed
//! ([`PathError`]): an encoded `/` (`%2F`, one segment to axum, two to
//! nginx), a backslash (a separator on some servers), control characters
//! such as NUL, bytes that are not UTF-8 once decoded, an escape that
//! decodes to another escape (`%2531`, which a server that decodes twice
//! reads as `1`), malformed escapes, and `..` above the root. Matrix
//! parameters (`;x=1`, stripped by some Java servers) are kept as part of
//! the segment, and the canonical form encodes `;` so no server strips them.

use crate::directory::HttpRoute;
use crate::Action;

/// How the percent-encoding of a request path is taken.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum EncodedPaths {
    /// Decode and resolve it; ambiguous forms ([`PathError`]) are refused.
    #[default]
    Decode,
    /// Refuse any path not written in canonical form already.
    Refuse,
}

impl std::str::FromStr for EncodedPaths {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "decode" => Ok(EncodedPaths::Decode),
            "refuse" => Ok(EncodedPaths::Refuse),
            _ => Err(format!("`{s}`: write `decode` or `refuse`")),
        }
    }
}

/// Why a path cannot be matched: servers would not agree on what it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("`%` is not followed by two hex digits")]
    BadEscape,
    #[error("an encoded `/` (%2F) is one segment to some servers and two to others")]
    EncodedSlash,
    #[error("a backslash is a path separator to some servers")]
    Backslash,
    #[error("a control character (such as NUL) in the path")]
    Control,
    #[error("an escape that decodes to another escape (such as %2531)")]
    DoubleEncoded,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
    #[error("`..` climbs above the root")]
    AboveRoot,
    #[error("the path is not in canonical form; send `{0}`")]
    NotCanonical(String),
}

/// A request path as a server resolves it: decoded segments, no `.`,
/// `..` or empty ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPath {
    segments: Vec<String>,
    trailing_slash: bool,
}

impl RequestPath {
    /// Resolves `path` (without the query). See the module doc.
    pub fn parse(path: &str, mode: EncodedPaths) -> Result<RequestPath, PathError> {
        let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        let mut segments: Vec<String> = Vec::new();
        let mut trailing_slash = false;
        for raw in rest.split('/') {
            let segment = decode(raw)?;
            trailing_slash = matches!(segment.as_str(), "" | "." | "..");
            match segment.as_str() {
                "" | "." => {}
                ".." => {
                    segments.pop().ok_or(PathError::AboveRoot)?;
                }
                _ => segments.push(segment),
            }
        }
        let resolved = RequestPath {
            trailing_slash: trailing_slash && !segments.is_empty(),
            segments,
        };
        if mode == EncodedPaths::Refuse {
            let canonical = resolved.canonical();
            if canonical != path {
                return Err(PathError::NotCanonical(canonical));
            }
        }
        Ok(resolved)
    }

    /// The decoded segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path written back: every byte but letters, digits and
    /// `-._~!$&'()*+,=:@` percent-encoded, so any server decodes it to
    /// these segments.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(16 * self.segments.len() + 1);
        for s in &self.segments {
            out.push('/');
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b) {
                    out.push(b as char);
                } else {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.push('%');
                    out.push(HEX[usize::from(b >> 4)] as char);
                    out.push(HEX[usize::from(b & 15)] as char);
                }
            }
        }
        if out.is_empty() || self.trailing_slash {
            out.push('/');
        }
        out
    }
}

/// A request target (`/path?query`) with its path resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target<'t> {
    pub path: RequestPath,
    /// The query as written: routes do not look at it.
    pub query: Option<&'t str>,
}

impl<'t> Target<'t> {
    /// Resolves the target's path; a fragment (`#...`) is dropped.
    pub fn parse(target: &'t str, mode: EncodedPaths) -> Result<Target<'t>, PathError> {
        let target = target.split('#').next().unwrap_or("");
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Ok(Target {
            path: RequestPath::parse(path, mode)?,
            query,
        })
    }

    /// The canonical path with the query as written.
    pub fn canonical(&self) -> String {
        let mut out = self.path.canonical();
        if let Some(q) = self.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// One segment, percent-decoded, or why it is ambiguous.
fn decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    // Most segments hold no escape and nothing to refuse: they are their
    // own decoding (and UTF-8 already).
    if !bytes
        .iter()
        .any(|&b| b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        return Ok(raw.to_owned());
    }
    decode_escapes(raw)
}

/// [`decode`] byte by byte.
fn decode_escapes(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hex = |k: usize| bytes.get(k).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(PathError::BadEscape);
                };
                i += 3;
                (hi * 16 + lo) as u8
            }
            b => {
                i += 1;
                b
            }
        };
        match b {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::Backslash),
            b if b < 0x20 || b == 0x7f => return Err(PathError::Control),
            _ => out.push(b),
        }
    }
    let is_hex = |b: Option<&u8>| b.is_some_and(u8::is_ascii_hexdigit);
    if out
        .iter()
        .enumerate()
        .any(|(k, b)| *b == b'%' && is_hex(out.get(k + 1)) && is_hex(out.get(k + 2)))
    {
        return Err(PathError::DoubleEncoded);
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// One compiled route: literal segments, `*`, or the customer capture.
#[derive(Clone, Debug)]
pub struct Route {
    segments: Vec<Segment>,
    method: Option<String>,
    pub action: Action,
    pub categories: Vec<String>,
    /// JSON pointer into the response body naming the customers it returns
    /// (`*` walks every element of an array), for searches.
    pub response_customers: Option<String>,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Any,
    Customer,
}

impl Route {
    pub fn compile(r: &HttpRoute) -> Route {
        let segments = r
            .pattern
            .get_ref()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "*" => Segment::Any,
                "{customer}" => Segment::Customer,
                lit => Segment::Literal(lit.to_owned()),
            })
            .collect();
        Route {
            segments,
            method: r.method.as_ref().map(|m| m.to_ascii_uppercase()),
            action: Action::parse(&r.action),
            categories: r.categories.clone(),
            response_customers: r.response_customers.clone(),
        }
    }

    /// The customer id if `path` matches (empty string when the route has no capture).
    pub fn matches<'p>(&self, method: &str, path: &'p RequestPath) -> Option<&'p str> {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return None;
        }
        let parts = path.segments();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut customer = "";
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l != part => return None,
                Segment::Customer => customer = part,
                _ => {}
            }
        }
        Some(customer)
    }
}

/// The routes of a directory, tried in order.
#[derive(Clone, Debug, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    pub fn new(routes: &[HttpRoute]) -> Routes {
        Routes(routes.iter().map(Route::compile).collect())
    }

    /// The first route matching a resolved path, with the customer its
    /// path names ("" when none).
    pub fn find_path<'p>(&self, method: &str, path: &'p RequestPath) -> Option<(&Route, &'p str)> {
        self.0
            .iter()
            .find_map(|r| r.matches(method, path).map(|c| (r, c)))
    }

    /// The first route matching the request target as written (the query
    /// is ignored, the path resolved as [`EncodedPaths::Decode`] does),
    /// with the customer it names; none for an ambiguous path.
    pub fn find(&self, method: &str, target: &str) -> Option<(&Route, String)> {
        let target = Target::parse(target, EncodedPaths::Decode).ok()?;
        self.find_path(method, &target.path)
            .map(|(r, c)| (r, c.to_owned()))
    }
}

/// Customer ids found in `body` at `pointer`, a JSON pointer whose `*`
/// segments walk every array element (`/results/*/id`). Strings and
/// numbers count; anything else at the pointer is skipped.
pub fn customers_at(body: &serde_json::Value, pointer: &str, out: &mut Vec<String>) {
    fn walk(v: &serde_json::Value, rest: &[&str], out: &mut Vec<String>) {
        let Some((head, tail)) = rest.split_first() else {
            match v {
                serde_json::Value::String(s) if !s.is_empty() => out.push(s.clone()),
                serde_json::Value::Number(n) => out.push(n.to_string()),
                _ => {}
            }
            return;
        };
        match (*head, v) {
            ("*", serde_json::Value::Array(items)) => {
                items.iter().for_each(|i| walk(i, tail, out));
            }
            ("*", serde_json::Value::Object(m)) => m.values().for_each(|i| walk(i, tail, out)),
            (key, serde_json::Value::Object(m)) => {
                let key = key.replace("~1", "/").replace("~0", "~");
                if let Some(i) = m.get(&key) {
                    walk(i, tail, out)
                }
            }
            (idx, serde_json::Value::Array(items)) => {
                if let Some(i) = idx.parse::<usize>().ok().and_then(|i| items.get(i)) {
                    walk(i, tail, out)
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = pointer
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    walk(body, &parts, out);
}

/// The value of cookie `name` in a `Cookie` header (`a=1; sid=xyz`), if
/// it is there once; a name sent twice is ambiguous and reads as absent.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for pair in header.split(';') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        if k.trim() == name {
            if found.is_some() {
                return None;
            }
            found = Some(v.trim().trim_matches('"'));
        }
    }
    found.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routes() -> Routes {
        let d = crate::Directory::from_toml(
            "[http]\n[[http.route]]\npattern = \"/api/v1/customers/{customer}\"\naction = \"lookup\"\n",
            "d.toml",
        )
        .unwrap();
        Routes::new(&d.http.unwrap().routes)
    }

    fn customer(target: &str) -> Option<String> {
        routes().find("GET", target).map(|(_, c)| c.to_string())
    }

    #[test]
    fn finding_4_percent_encoded_customer_is_matched_decoded() {
        assert_eq!(
            customer("/api/v1/customers/C-100%31").as_deref(),
            Some("C-1001")
        );
        assert_eq!(
            customer("/api/v1/%63ustomers/C-1001?x=%31").as_deref(),
            Some("C-1001")
        );
        // Non-ASCII ids arrive encoded and are recorded as text.
        assert_eq!(
            customer("/api/v1/customers/%C3%96-1").as_deref(),
            Some("Ö-1")
        );
    }

    #[test]
    fn finding_4_dot_segments_and_repeated_slashes_resolve_as_a_server_would() {
        for target in [
            "//api//v1/customers/C-1",
            "/api/v1/./customers/C-1",
            "/api/v1/other/../customers/C-1",
            "/api/v1/other/%2e%2E/customers/C-1/",
            "/api/v1/customers/x/../C-1",
        ] {
            assert_eq!(customer(target).as_deref(), Some("C-1"), "{target}");
        }
    }

    #[test]
    fn the_canonical_form_is_what_was_matched_and_resolves_to_itself() {
        let t = Target::parse(
            "//api/v1/x/../customers/%C3%96%20%3b1;2?q=%2F",
            EncodedPaths::Decode,
        )
        .unwrap();
        assert_eq!(t.path.segments(), ["api", "v1", "customers", "Ö ;1;2"]);
        let canonical = t.canonical();
        assert_eq!(canonical, "/api/v1/customers/%C3%96%20%3B1%3B2?q=%2F");
        let again = Target::parse(&canonical, EncodedPaths::Refuse).unwrap();
        assert_eq!(again, t);
        assert_eq!(
            RequestPath::parse("/a/b/", EncodedPaths::Refuse)
                .unwrap()
                .canonical(),
            "/a/b/"
        );
        assert_eq!(
            RequestPath::parse("/", EncodedPaths::Refuse)
                .unwrap()
                .canonical(),
            "/"
        );
        assert_eq!(
            RequestPath::parse("/a/%62", EncodedPaths::Refuse),
            Err(PathError::NotCanonical("/a/b".into()))
        );
        assert_eq!(
            RequestPath::parse("/a//b", EncodedPaths::Refuse),
            Err(PathError::NotCanonical("/a/b".into()))
        );
    }

    #[test]
    fn each_ambiguous_form_is_named() {
        let err = |p: &str| RequestPath::parse(p, EncodedPaths::Decode).unwrap_err();
        assert_eq!(err("a"), PathError::NotAbsolute);
        assert_eq!(err("/a%2fb"), PathError::EncodedSlash);
        assert_eq!(err("/a\\b"), PathError::Backslash);
        assert_eq!(err("/a%5Cb"), PathError::Backslash);
        assert_eq!(err("/a%00"), PathError::Control);
        assert_eq!(err("/a%0d%0a"), PathError::Control);
        assert_eq!(err("/a%2531"), PathError::DoubleEncoded);
        assert_eq!(err("/a%25%33%31"), PathError::DoubleEncoded);
        assert_eq!(err("/a%C3"), PathError::NotUtf8);
        assert_eq!(err("/a%3"), PathError::BadEscape);
        assert_eq!(err("/a%g1"), PathError::BadEscape);
        assert_eq!(err("/a/../.."), PathError::AboveRoot);
        // A `%` that is not an escape once decoded is only a character.
        assert_eq!(
            RequestPath::parse("/100%25", EncodedPaths::Decode)
                .unwrap()
                .segments(),
            ["100%"]
        );
    }

    #[test]
    fn finding_4_ambiguous_encodings_match_no_route() {
        for target in [
            "/api/v1/customers/C-1%2F..%2FC-2",
            "/api/v1/customers/C-1%5c",
            "/api/v1/customers/C-1\\",
            "/api/v1/customers/C-1%00",
            "/api/v1/customers/C-100%2531",
            "/api/v1/customers/C-%ff",
            "/api/v1/customers/C-%zz",
            "/api/v1/customers/C-%3",
            "/../api/v1/customers/C-1",
        ] {
            assert_eq!(customer(target), None, "{target}");
        }
    }

    #[test]
    fn pointers_with_wildcards_collect_every_customer_of_a_search() {
        let body = json!({"total": 3, "results": [{"id": "C-1"}, {"id": "C-2"}, {"id": 77}, {"name": "x"}]});
        let mut out = Vec::new();
        customers_at(&body, "/results/*/id", &mut out);
        assert_eq!(out, ["C-1", "C-2", "77"]);
        out.clear();
        customers_at(&body, "/results/1/id", &mut out);
        assert_eq!(out, ["C-2"]);
        out.clear();
        customers_at(
            &json!([{"customer": {"id": "C-9"}}]),
            "/*/customer/id",
            &mut out,
        );
        assert_eq!(out, ["C-9"]);
        out.clear();
        customers_at(&json!({"results": "none"}), "/results/*/id", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn cookies_are_read_by_name_and_a_repeated_name_is_ambiguous() {
        assert_eq!(cookie("a=1; sid=xyz ; b=2", "sid"), Some("xyz"));
        assert_eq!(cookie("sid=\"q\"", "sid"), Some("q"));
        assert_eq!(cookie("xsid=1; sidx=2", "sid"), None);
        assert_eq!(cookie("sid=1; sid=2", "sid"), None);
        assert_eq!(cookie("sid=", "sid"), None);
    }

    proptest::proptest! {
        #[test]
        fn a_segment_without_escapes_decodes_as_the_byte_loop_does(
            raw in proptest::collection::vec(
                proptest::sample::select(vec!["a", "C-1", "%", "2", "5", "F", "f", "\\", "\u{0}", "\u{7f}", "\u{1f}", ".", "é", ";", " "]),
                0..12,
            )
        ) {
            let raw = raw.concat();
            proptest::prop_assert_eq!(decode(&raw), decode_escapes(&raw));
        }
    }
}
