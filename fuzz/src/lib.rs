//! Shared body of the parser fuzz targets: every line of the input through
//! one format's parser, with a directory that enables every mapping.

use std::sync::{Arc, OnceLock};
use vakt_event::{Directory, Origin};
use vakt_ingest::parsers::{self, ParserContext};

const DIR: &str = r#"
[http]
account = "remote_user"

[[http.route]]
pattern = "/customers/{customer}"

[[http.route]]
pattern = "/customers/{customer}/*"

[postgres]
key_columns = ["id", "customer_id"]

[[postgres.table]]
name = "public.account"
categories = ["name"]
"#;

fn context() -> &'static ParserContext {
    static CTX: OnceLock<ParserContext> = OnceLock::new();
    CTX.get_or_init(|| ParserContext { directory: Arc::new(Directory::from_toml(DIR, "fuzz").expect("fuzz directory")) })
}

/// Matches `target` against the fuzz directory's routes, as the proxy and
/// the web-log parsers do.
pub fn match_route(target: &str) {
    static ROUTES: OnceLock<vakt_event::routes::Routes> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        vakt_event::routes::Routes::new(&context().directory.http.as_ref().expect("routes").routes)
    });
    for method in ["GET", "POST", "HEAD"] {
        let _ = routes.find(method, target);
    }
}

pub fn run(format: &str, data: &[u8]) {
    let f = parsers::format(format).expect("registered format");
    let mut p = (f.build)(context());
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(data);
    for (i, line) in text.split('\n').enumerate() {
        let _ = p.parse_line(line, &Origin::new("fuzz".into(), i as u64 + 1), &mut out);
    }
    let _ = p.finish(&mut out);
}
