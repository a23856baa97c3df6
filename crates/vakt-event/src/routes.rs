//! The directory's `[[http.route]]` patterns, compiled: which action a web
//! request is and which customer it names. Shared by the web-log parsers
//! and the HTTP proxy, so a route means the same in a log and inline.

use crate::directory::HttpRoute;
use crate::Action;

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
            .trim_matches('/')
            .split('/')
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
    pub fn matches<'p>(&self, method: &str, path: &'p str) -> Option<&'p str> {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return None;
        }
        let mut customer = "";
        let mut parts = path.trim_matches('/').split('/');
        for seg in &self.segments {
            let part = parts.next()?;
            match seg {
                Segment::Literal(l) if l != part => return None,
                Segment::Customer if part.is_empty() => return None,
                Segment::Customer => customer = part,
                _ => {}
            }
        }
        parts.next().is_none().then_some(customer)
    }
}

/// The routes of a directory, tried in order.
#[derive(Clone, Debug, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    pub fn new(routes: &[HttpRoute]) -> Routes {
        Routes(routes.iter().map(Route::compile).collect())
    }

    /// The first route matching the request (the query string is ignored),
    /// with the customer its path names ("" when none).
    pub fn find<'p>(&self, method: &str, target: &'p str) -> Option<(&Route, &'p str)> {
        let path = target.split(['?', '#']).next().unwrap_or("");
        self.0
            .iter()
            .find_map(|r| r.matches(method, path).map(|c| (r, c)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
