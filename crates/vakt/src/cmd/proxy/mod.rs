//! `vakt proxy http|pg`: inline enforcement in front of a lookup API or
//! the customer database, and `vakt account enroll-totp` for step-up.

mod http;
mod pg;

use super::ledger::DataArgs;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use vakt_deliver::{Deliverer, DeliveryConfig};
use vakt_event::Directory;
use vakt_ledger::Ledger;
use vakt_pipeline::{Delivery, JsonLines, Outlet, PipelineConfig};
use vakt_proxy::{EventSink, FailMode, Guard, GuardConfig, SinkConfig};

#[derive(clap::Subcommand)]
pub enum ProxyCommand {
    /// Reverse proxy for a REST customer-lookup API.
    Http(http::HttpArgs),
    /// PostgreSQL wire-protocol proxy for the customer database.
    Pg(pg::PgArgs),
}

/// Options every proxy shares: where decisions and the ledger live, how
/// enforcement behaves, where alerts go.
#[derive(clap::Args, Clone, Debug)]
pub struct EnforceArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory file (TOML): accounts, organisations, routes or key columns, policies.
    #[arg(long, short = 'd', value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// Write alert lines to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// When the engine falls behind: `open` passes requests (events are
    /// spooled to disk), `closed` refuses them.
    #[arg(long, default_value = "open", value_name = "MODE")]
    pub fail_mode: FailMode,
    /// Events held in memory for the engine before spooling.
    #[arg(long, default_value_t = 65_536, value_name = "EVENTS")]
    pub queue: usize,
    /// Requests per minute a throttled account or address may make.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub throttle_per_minute: u32,
    /// How long a correct TOTP code satisfies a step-up decision (e.g. 15m).
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub step_up_for: String,
    /// Deliver alerts to the webhooks and syslog receivers of this file (TOML, `[[target]]`).
    #[arg(long, value_name = "FILE")]
    pub deliver: Option<PathBuf>,
    /// Whom blocked users should contact, said in every refusal.
    #[arg(long, default_value = "your security team", value_name = "TEXT")]
    pub contact: String,
    /// Threads serving connections (recording and detection have their
    /// own). One, as PgBouncer: next to the database on the same cores,
    /// a second thread cost more in wake-ups than it served; 0 is one per
    /// core, for a host of its own.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
}

/// The guard and the sink a proxy runs with.
pub struct Enforcement {
    pub guard: Arc<Guard>,
    pub sink: EventSink,
    pub directory: Arc<Directory>,
    pub deliverer: Option<Arc<Deliverer>>,
}

impl Enforcement {
    /// After the proxy stopped: drain events into the ledger, then give
    /// alert delivery a few seconds (what is left goes out at the next start).
    fn finish(name: &str, sink: Arc<EventSink>, deliverer: Option<Arc<Deliverer>>) -> Result<()> {
        let stats = sink.stats();
        eprintln!(
            "vakt proxy {name}: {} accesses recorded ({} spooled, {} replayed), {} alerts, {} decisions; draining to the ledger",
            stats.submitted.load(Ordering::Relaxed),
            stats.spooled.load(Ordering::Relaxed),
            stats.replayed.load(Ordering::Relaxed),
            stats.alerts.load(Ordering::Relaxed),
            stats.decisions.load(Ordering::Relaxed),
        );
        Arc::try_unwrap(sink)
            .map_err(|_| anyhow::anyhow!("the proxy still holds the event sink"))?
            .shutdown()
            .context("cannot drain the events into the ledger")?;
        if let Some(d) = deliverer.and_then(|d| Arc::try_unwrap(d).ok()) {
            d.shutdown(Duration::from_secs(10));
        }
        Ok(())
    }
}

impl EnforceArgs {
    pub fn start(&self, source: &str) -> Result<Enforcement> {
        let directory = Arc::new(match &self.directory {
            Some(p) => Directory::load(p)?,
            None => Directory::default(),
        });
        let step_up_ms =
            vakt_event::directory::parse_ttl(&self.step_up_for).with_context(|| {
                format!(
                    "--step-up-for `{}` is not a duration; write e.g. 90s, 15m or 1h",
                    self.step_up_for
                )
            })?;
        let data = self.data.dir();
        let out: Box<dyn Write + Send> = match &self.alerts {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create the alert file {}", p.display()))?,
            )),
            None => Box::new(std::io::stdout()),
        };
        let deliverer = match &self.deliver {
            Some(p) => Some(Arc::new(Deliverer::start(
                &data.path,
                &DeliveryConfig::load(p)?,
            )?)),
            None => None,
        };
        let mut outlets: Vec<Box<dyn Outlet>> =
            vec![Box::new(JsonLines::new("alert output", out, true))];
        if let Some(d) = &deliverer {
            outlets.push(Box::new(Delivery(d.clone())));
        }
        let sink = EventSink::start(
            &data,
            PipelineConfig {
                directory: directory.clone(),
                ..Default::default()
            },
            outlets,
            SinkConfig {
                queue: self.queue,
                fail_mode: self.fail_mode,
                source: source.into(),
            },
        )
        .with_context(|| format!("cannot start the engine on {}", data.path.display()))?;
        let guard = Guard::start(
            data,
            &directory,
            GuardConfig {
                throttle_per_minute: self.throttle_per_minute,
                step_up_for: Duration::from_millis(step_up_ms as u64),
                contact: self.contact.clone(),
                ..Default::default()
            },
        )?;
        Ok(Enforcement {
            guard,
            sink,
            directory,
            deliverer,
        })
    }
}

pub fn proxy(cmd: ProxyCommand) -> Result<ExitCode> {
    match cmd {
        ProxyCommand::Http(args) => http::run(args),
        ProxyCommand::Pg(args) => pg::run(args),
    }
}

#[derive(clap::Subcommand)]
pub enum AccountCommand {
    /// Enrol an account for TOTP step-up: prints the secret and an otpauth:// URI for an authenticator app.
    EnrollTotp {
        #[command(flatten)]
        data: DataArgs,
        /// The account name, as the proxy identifies it.
        account: String,
    },
}

pub fn account(cmd: AccountCommand) -> Result<ExitCode> {
    match cmd {
        AccountCommand::EnrollTotp { data, account } => {
            let secret = vakt_proxy::guard::new_totp_secret();
            let mut l = Ledger::open(&data.dir())?;
            l.set_totp_secret(&account, &secret, vakt_event::Timestamp::now())?;
            l.close()?;
            println!("account: {account}");
            println!("secret:  {secret}");
            if let Some(uri) = vakt_proxy::guard::totp_uri(&secret, &account) {
                println!("uri:     {uri}");
            }
            eprintln!(
                "vakt: give the secret to the account's owner once; a new enrolment replaces it"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Enforcement {
    /// Binds `listen`, says where it forwards, runs `serve` on the listener
    /// until Ctrl-C or SIGTERM (the future `serve` is given), then drains
    /// the events into the ledger.
    pub fn serve<F, E>(
        self,
        name: &str,
        threads: usize,
        listen: std::net::SocketAddr,
        upstream: &str,
        fail_mode: FailMode,
        serve: impl FnOnce(tokio::net::TcpListener, Shutdown, Arc<Guard>, Arc<EventSink>) -> F,
    ) -> Result<ExitCode>
    where
        F: std::future::Future<Output = std::result::Result<(), E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let sink = Arc::new(self.sink);
        let serving = sink.clone();
        let guard = self.guard;
        let runtime = match threads {
            1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            0 => tokio::runtime::Runtime::new(),
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
        }
        .context("cannot start the async runtime")?;
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            eprintln!(
                "vakt proxy {name}: listening on {} -> {upstream} (fail {fail_mode:?})",
                listener.local_addr()?
            );
            serve(
                listener,
                Box::pin(vakt_server::shutdown_signal()),
                guard,
                serving,
            )
            .await
            .context("the proxy stopped")
        })?;
        Enforcement::finish(name, sink, self.deliverer)?;
        Ok(ExitCode::SUCCESS)
    }
}
