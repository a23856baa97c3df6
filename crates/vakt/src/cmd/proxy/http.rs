//! `vakt proxy http`: the reverse proxy in front of a lookup API.

use super::EnforceArgs;
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::process::ExitCode;
use vakt_proxy::http::{serve_http, HttpProxyConfig};

#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8088", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The API behind the proxy, e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    #[command(flatten)]
    pub enforce: EnforceArgs,
}

pub fn run(args: HttpArgs) -> Result<ExitCode> {
    let e = args.enforce.start("http-proxy")?;
    let config = HttpProxyConfig::new(&args.upstream, e.directory.http.as_ref()).map_err(|m| {
        anyhow!(
            "{m}{}",
            args.enforce
                .directory
                .as_ref()
                .map(|p| format!(" (directory {})", p.display()))
                .unwrap_or_default()
        )
    })?;
    e.serve(
        "http",
        args.listen,
        &args.upstream,
        args.enforce.fail_mode,
        |listener, stop, guard, sink| serve_http(listener, config, guard, sink, stop),
    )
}
