//! `vakt proxy http`: the reverse proxy in front of a lookup API.

use super::EnforceArgs;
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use vakt_event::routes::EncodedPaths;
use vakt_proxy::http::{serve_http, AttemptPolicy, HttpProxyConfig, UnreadableAccount};

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
    /// Wrong step-up (TOTP) codes an account or an address may send within
    /// --step-up-lockout; the one that uses them up locks both out for
    /// --step-up-lockout (429 with Retry-After, no code checked) and raises
    /// a `step_up_failures` alert.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub step_up_attempts: u32,
    /// The window wrong step-up codes are counted in, and how long a
    /// lockout lasts (e.g. 15m).
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub step_up_lockout: String,
    /// How long a client may take to start a request and to send its
    /// headers; a connection idle between requests is closed after as long.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: String,
    /// Connections served at once; past it, new connections wait to be
    /// accepted until one closes.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// An upstream connection unused this long is closed; set it below the
    /// upstream's own keep-alive timeout, or a request may meet a
    /// connection the upstream is closing (and get 502).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub upstream_idle_timeout: String,
    #[command(flatten)]
    pub enforce: EnforceArgs,
}

fn duration(flag: &str, text: &str) -> Result<Duration> {
    match vakt_event::directory::parse_ttl(text) {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms as u64)),
        _ => Err(anyhow!(
            "{flag} `{text}` is not a duration above zero; write e.g. 30s, 15m or 1h"
        )),
    }
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
    config.header_timeout = duration("--header-timeout", &args.header_timeout)?;
    config.max_connections = args.max_connections.max(1);
    config.upstream_idle_timeout =
        duration("--upstream-idle-timeout", &args.upstream_idle_timeout)?;
    let lockout = duration("--step-up-lockout", &args.step_up_lockout)?;
    config.step_up_limit = AttemptPolicy {
        allowed: args.step_up_attempts.max(1),
        window: lockout,
        lockout,
    };
    e.serve(
        "http",
        args.enforce.threads,
        args.listen,
        &args.upstream,
        args.enforce.fail_mode,
        |listener, stop, guard, sink| serve_http(listener, config, guard, sink, stop),
    )
}
