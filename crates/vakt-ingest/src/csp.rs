//! Browsers' CSP violation reports (EVENTS.md section 3), read into the
//! page they came from and the URL that was blocked: `application/csp-report`
//! bodies (`{"csp-report": {...}}`) and Reporting API batches
//! (`application/reports+json`, an array of reports of which the
//! `csp-violation` ones count).
//!
//! Hand-written rather than a URL crate for the host: a report's URLs are
//! written by browsers (and by anyone posting to the intake), and all that
//! is needed is the scheme, host and port, without normalising or failing
//! on the rest.

use serde_json::Value;

/// Why a body holds no reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CspError {
    #[error(
        "the body is not JSON ({0}); send {{\"csp-report\": {{...}}}} or a Reporting API array"
    )]
    NotJson(String),
    #[error("application/reports+json must be an array of reports")]
    NotAnArray,
    #[error("application/csp-report bodies are {{\"csp-report\": {{...}}}}; the key is missing")]
    NoReport,
}

/// A URL's scheme, host and port, as written (`https`, `shop.example`, `Some(8443)`).
pub fn split_url(url: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() => Some(p.parse().ok()?),
        _ => None,
    };
    Some((scheme, host, port))
}

/// One violation: the document's URL and the blocked one.
pub struct Violation {
    /// The page's URL.
    pub document: String,
    /// The URL the policy blocked (or `inline`, `eval`, ...).
    pub blocked: String,
    pub directive: String,
}

fn str_of<'a>(v: &'a Value, keys: &[&str]) -> &'a str {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or("")
}

/// The violations of a body sent with `content_type` (lower case).
pub fn violations(content_type: &str, body: &[u8]) -> Result<Vec<Violation>, CspError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| CspError::NotJson(e.to_string()))?;
    let mut out = Vec::new();
    if content_type.starts_with("application/reports+json") || v.is_array() {
        let Some(list) = v.as_array() else {
            return Err(CspError::NotAnArray);
        };
        for r in list {
            if r.get("type").and_then(Value::as_str) != Some("csp-violation") {
                continue;
            }
            let body = r.get("body").unwrap_or(&Value::Null);
            let document = match str_of(body, &["documentURL", "document-uri"]) {
                "" => str_of(r, &["url"]),
                d => d,
            };
            out.push(Violation {
                document: document.to_owned(),
                blocked: str_of(body, &["blockedURL", "blocked-uri"]).to_owned(),
                directive: str_of(body, &["effectiveDirective", "violatedDirective"]).to_owned(),
            });
        }
    } else {
        let Some(r) = v.get("csp-report") else {
            return Err(CspError::NoReport);
        };
        out.push(Violation {
            document: str_of(r, &["document-uri"]).to_owned(),
            blocked: str_of(r, &["blocked-uri"]).to_owned(),
            directive: str_of(r, &["effective-directive", "violated-directive"]).to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_host_and_port() {
        assert_eq!(
            split_url("https://shop.example:8443/a?b"),
            Some(("https", "shop.example", Some(8443)))
        );
        assert_eq!(
            split_url("https://u:p@[2001:db8::1]/x"),
            Some(("https", "2001:db8::1", None))
        );
        assert_eq!(split_url("inline"), None);
        assert_eq!(split_url("data:"), None);
    }
}
