//! `vakt proxy http`: the reverse proxy in front of a lookup API.

use super::EnforceArgs;
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::process::ExitCode;
use vakt_event::routes::EncodedPaths;
use vakt_proxy::http::{serve_http, HttpProxyConfig, UnreadableAccount};

#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8088", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The API behind the proxy, e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// A request whose account cannot be read (the directory's `[http]
    /// account` header or credentials missing, malformed or sent twice):
    /// `refuse` answers 400, or 401 for basic auth and JWTs; `address`
    /// passes it as the client address.
    #[arg(long, default_value = "refuse", value_name = "MODE")]
    pub unreadable_account: UnreadableAccount,
    /// Request paths with percent-escapes, `.`/`..` or repeated slashes:
    /// `decode` resolves them as a web server would, matches routes on the
    /// result and forwards it; `refuse` answers 400 to any path not already
    /// in that form. Either way, paths servers disagree on (`%2F`, `\`,
    /// NUL, `%2531`, not UTF-8) are refused.
    #[arg(long, default_value = "decode", value_name = "MODE")]
    pub encoded_paths: EncodedPaths,
    #[command(flatten)]
    pub enforce: EnforceArgs,
}

pub fn run(args: HttpArgs) -> Result<ExitCode> {
    let e = args.enforce.start("http-proxy")?;
    let mut config =
        HttpProxyConfig::new(&args.upstream, e.directory.http.as_ref()).map_err(|m| {
            anyhow!(
                "{m}{}",
                args.enforce
                    .directory
                    .as_ref()
                    .map(|p| format!(" (directory {})", p.display()))
                    .unwrap_or_default()
            )
        })?;
    config.unreadable_account = args.unreadable_account;
    config.encoded_paths = args.encoded_paths;
    e.serve(
        "http",
        args.listen,
        &args.upstream,
        args.enforce.fail_mode,
        |listener, stop, guard, sink| serve_http(listener, config, guard, sink, stop),
    )
}
