//! `vakt serve`: the HTTP API (ingest, decisions, alerts) over the data
//! directory's ledger, until Ctrl-C or SIGTERM.

use crate::cmd::ledger::DataArgs;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use vakt_event::Directory;

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory file (TOML): organisations, accounts, canaries, and the
    /// `[[policy]]` entries that turn alerts into decisions.
    #[arg(long, short = 'd', value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// How often the directory file is checked for edits: a good edit
    /// applies to the next event, a bad one is refused with file:line
    /// (logged, counted in /metrics) and the running directory stays.
    #[arg(long, default_value = "5s", value_name = "DURATION",
          value_parser = vakt_pipeline::reload::parse_poll)]
    pub directory_poll: std::time::Duration,
    /// Address and port to listen on (default 127.0.0.1:8480); port 0
    /// picks a free one (printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Alert delivery targets (TOML, as for `vakt watch --deliver`).
    #[arg(long, value_name = "FILE")]
    pub deliver: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log file to follow like `tail -F` (repeat for more); any format
    /// `vakt watch` reads. Added to the settings file's `follow` list.
    #[arg(long, value_name = "FILE")]
    pub follow: Vec<PathBuf>,
    /// Settings file (TOML): `listen`, `directory`, `deliver`, `tls_cert`,
    /// `tls_key`, `follow` (a list of log files), `csp_hosts`, and a
    /// `[kafka]` table (`brokers`, `group`, `[[kafka.topic]]` with `name`
    /// and `format`, `[kafka.options]`) to read topics; flags given
    /// on the command line win. Relative paths are taken from the file's folder.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Largest POST /v1/events body, in bytes.
    #[arg(long, default_value_t = vakt_server::DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub max_body: usize,
    /// Events that may wait for the engine; past it, ingest answers 429.
    #[arg(long, default_value_t = vakt_server::DEFAULT_QUEUE_EVENTS, value_name = "EVENTS")]
    pub queue: usize,
    /// Connections served at once; past it, new ones wait until one ends.
    #[arg(long, default_value_t = vakt_server::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle keep-alive connection stays open).
    #[arg(long, default_value_t = vakt_server::DEFAULT_HEADER_TIMEOUT.as_secs(), value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a whole request may take to arrive and be answered (408 past it).
    #[arg(long, default_value_t = vakt_server::DEFAULT_REQUEST_TIMEOUT.as_secs(), value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// A page host whose CSP reports are taken (repeat for more; the
    /// directory's [[egress_allow]] hosts count too). Reports from other
    /// pages are ignored, so senders cannot invent hosts.
    #[arg(long, value_name = "HOST")]
    pub csp_host: Vec<String>,
    /// CSP reports taken per minute from one client address.
    #[arg(long, default_value_t = vakt_server::CspLimits::default().per_address_per_minute, value_name = "N")]
    pub csp_per_minute: u32,
    /// Answer GET /metrics without a token (a scraper on a trusted
    /// network); by default it needs a read token.
    #[arg(long)]
    pub open_metrics: bool,
    /// How often the directory's `[[page]]` entries are looked at for
    /// checks that are due (each page has its own `every`).
    #[arg(long, default_value = "30s", value_name = "DURATION",
          value_parser = vakt_pipeline::reload::parse_poll)]
    pub page_tick: std::time::Duration,
    /// Do not check the `[[page]]` entries (another host runs `vakt pages check`).
    #[arg(long)]
    pub no_page_checks: bool,
    /// The Chromium binary for page checks (default: $VAKT_CHROMIUM, else /usr/bin/chromium).
    #[arg(long, value_name = "PATH")]
    pub chromium: Option<PathBuf>,
}

/// `--config FILE`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    directory: Option<PathBuf>,
    deliver: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    follow: Vec<PathBuf>,
    #[serde(default)]
    csp_hosts: Vec<String>,
    /// Topics to read as a member of a Kafka consumer group.
    kafka: Option<vakt_server::KafkaConfig>,
}

/// Where `offset` is in `text`, as (line, column), both from 1.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}

fn load_config(path: &std::path::Path) -> Result<(FileConfig, Option<SocketAddr>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    let mut c: FileConfig = toml::from_str(&text).map_err(|e| {
        let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
        anyhow::anyhow!(
            "{}:{line}:{col}: {}; the keys are listen, directory, deliver, tls_cert, tls_key, follow, csp_hosts and [kafka]",
            path.display(),
            e.message().trim()
        )
    })?;
    let listen = match &c.listen {
        None => None,
        Some(l) => Some(l.parse::<SocketAddr>().map_err(|_| {
            let at = text.find("listen").unwrap_or(0);
            let (line, col) = line_col(&text, at);
            anyhow::anyhow!(
                "{}:{line}:{col}: listen = \"{l}\" is not an address and port; write e.g. listen = \"127.0.0.1:8480\"",
                path.display()
            )
        })?),
    };
    if c.tls_cert.is_some() != c.tls_key.is_some() {
        let at = text.find("tls_").unwrap_or(0);
        let (line, col) = line_col(&text, at);
        anyhow::bail!(
            "{}:{line}:{col}: tls_cert and tls_key go together; give both (HTTPS) or neither (HTTP)",
            path.display()
        );
    }
    if let Some(k) = &c.kafka {
        if let Err(what) = k.check() {
            let at = text.find("[kafka").unwrap_or(0);
            let (line, col) = line_col(&text, at);
            anyhow::bail!("{}:{line}:{col}: [kafka]: {what}", path.display());
        }
    }
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    for p in [
        &mut c.directory,
        &mut c.deliver,
        &mut c.tls_cert,
        &mut c.tls_key,
    ]
    .into_iter()
    .flatten()
    .chain(c.follow.iter_mut())
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok((c, listen))
}

pub fn run(mut args: ServeArgs) -> Result<ExitCode> {
    let mut kafka = None;
    if let Some(path) = args.config.clone() {
        let (c, listen) = load_config(&path)?;
        args.listen = args.listen.or(listen);
        args.directory = args.directory.or(c.directory);
        args.deliver = args.deliver.or(c.deliver);
        args.follow.extend(c.follow);
        args.csp_host.extend(c.csp_hosts);
        kafka = c.kafka;
        if args.tls_cert.is_none() {
            args.tls_cert = c.tls_cert;
            args.tls_key = c.tls_key;
        }
    }
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8480)));
    let deliver = match &args.deliver {
        Some(p) => Some(vakt_deliver::DeliveryConfig::load(p)?),
        None => None,
    };
    let (directory, directory_file) = match &args.directory {
        Some(p) => {
            let l = vakt_pipeline::reload::load(p)?;
            let file = vakt_pipeline::reload::DirectoryFile::new(p.clone(), l.fingerprint);
            (l.directory, Some(file))
        }
        None => {
            eprintln!("vakt: note: no --directory given; no canaries, networks or [[policy]] entries, so alerts make no decisions");
            (std::sync::Arc::new(Directory::default()), None)
        }
    };
    let dir = args.data.dir();
    if !dir.exists() {
        eprintln!(
            "vakt: note: creating the data directory {} (ledger and signing key)",
            dir.path.display()
        );
    }
    let mut config = vakt_server::Config::new(dir.clone(), directory);
    config.directory_file = directory_file;
    config.directory_poll = args.directory_poll;
    config.body_limit = args.max_body;
    config.queue_events = args.queue;
    config.open_metrics = args.open_metrics;
    config.csp.hosts = args.csp_host.clone();
    config.csp.per_address_per_minute = args.csp_per_minute;
    if !args.no_page_checks {
        // A page whose sign-in needs a variable not set stops the start,
        // not every check an hour later.
        for p in &config.directory.pages {
            let chromium =
                vakt_pipeline::pages::options_for(p, args.chromium.as_ref(), 0)?.chromium;
            if !chromium.exists() {
                anyhow::bail!("the directory has [[page]] entries to check but there is no Chromium at {}; install it (apt-get install chromium), give its path with --chromium or VAKT_CHROMIUM, or leave the checks to another host with --no-page-checks", chromium.display());
            }
        }
    }
    config.page_tick = (!args.no_page_checks).then_some(args.page_tick);
    config.chromium = args.chromium.clone();
    config.limits = vakt_server::ConnectionLimits {
        max_connections: args.max_connections.max(1),
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
        request_timeout: std::time::Duration::from_secs(args.request_timeout),
    };
    config.deliver = deliver;
    for f in &args.follow {
        if !f.is_file() {
            anyhow::bail!(
                "cannot follow {}: no such file; create it (it may be empty) or fix the path",
                f.display()
            );
        }
    }
    config.follow = args.follow.clone();
    config.kafka = kafka;
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(vakt_server::TlsFiles { cert, key }),
        _ => None,
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let report = vakt_server::run(config, listen, |addr| {
        eprintln!(
            "vakt serve: listening on {scheme}://{addr} (data {}); Ctrl-C stops",
            dir.path.display()
        );
    })
    .with_context(|| format!("vakt serve on {listen}"))?;
    eprintln!(
        "vakt serve: stopped; {} journal lines replayed, {} events processed, {} accesses appended to the ledger, {} alert lines, {} decisions made",
        report.replayed, report.events, report.appended, report.alert_lines, report.decisions
    );
    Ok(ExitCode::SUCCESS)
}
