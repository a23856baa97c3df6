//! `vakt init`, `vakt ledger verify`, `vakt scope`: the data directory,
//! its integrity, and breach scoping from it.

use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use vakt_event::decision::{Action, Decision, Scope};
use vakt_event::{Directory, Timestamp};
use vakt_ledger::audit::Audit;
use vakt_ledger::scope::Cidr;
use vakt_ledger::{verify, DataDir, Ledger};

#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// Data directory (default, also for a bare `--data`: $VAKT_DATA, else
    /// ./vakt-data).
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "-")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    pub fn dir(&self) -> DataDir {
        DataDir::resolve(self.data.as_deref().filter(|p| p.as_os_str() != "-"))
    }
}

pub fn init(args: DataArgs) -> Result<ExitCode> {
    let dir = args.dir();
    let created = dir
        .init()
        .with_context(|| format!("cannot initialise {}", dir.path.display()))?;
    if created {
        println!(
            "vakt init: created {} with a new Ed25519 signing key (ledger.key, ledger.pub)",
            dir.path.display()
        );
    } else {
        println!(
            "vakt init: {} already exists; its key is kept",
            dir.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum LedgerCommand {
    /// Check the chains, the signed checkpoints, the scoping index, alerts,
    /// decisions, tokens and users, and SQLite's integrity; exit 1 at the
    /// first problem.
    Verify(VerifyArgs),
    /// Write the newest signed checkpoint as one JSON line, to keep outside
    /// the data directory (another machine, syslog, a published note).
    Anchor {
        #[command(flatten)]
        data: DataArgs,
        /// Append the line to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Move a ledger written before the segments engine (entries in SQLite
    /// tables) to it, in place: verified before and after, the old database
    /// kept as ledger.db.v1. Opening such a ledger to write does the same.
    Migrate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Keep this data directory's entries in a PostgreSQL database (a
    /// chain of its own there), from now on: every command on the data
    /// directory then reads and writes them there. Names, checkpoints,
    /// alerts and decisions stay in the data directory. Give it a new data
    /// directory; run it again with a new URL when the password or server
    /// changes.
    Store {
        #[command(flatten)]
        data: DataArgs,
        /// postgres://user:password@host:port/database (UTF8).
        #[arg(value_name = "URL")]
        url: String,
        /// How a new database keeps customer postings: btree (a table with
        /// a B-tree; faster look-ups and appends) or gin (a GIN index; a
        /// sixth less disk). An existing database keeps its own.
        #[arg(long, default_value = "btree", value_parser = ["btree", "gin"])]
        postings: String,
    },
}

#[derive(clap::Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("anchored").args(["anchor"]).requires("public_key")))]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Lines written by `vakt ledger anchor`: the ledger must still hold
    /// each checkpoint in it. Needs --public-key.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
    /// A copy of ledger.pub kept outside the data directory, to check
    /// signatures with (whoever can rewrite the ledger can replace ledger.pub).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
}

pub fn ledger(cmd: LedgerCommand) -> Result<ExitCode> {
    match cmd {
        LedgerCommand::Store {
            data,
            url,
            postings,
        } => {
            use vakt_ledger::store::postgres::{redacted, Postings};
            let dir = data.dir();
            let design = Postings::parse(&postings).expect("clap checked it");
            let s = vakt_ledger::ledger::use_postgres(&dir, &url, design).with_context(|| {
                format!(
                    "cannot keep the entries of {} in {}",
                    dir.path.display(),
                    redacted(&url)
                )
            })?;
            println!(
                "vakt ledger store: {} {} its entries in {}, chain {}, customer postings as {}",
                dir.path.display(),
                if s.new { "now keeps" } else { "keeps" },
                redacted(&url),
                s.chain,
                s.postings.name()
            );
            if redacted(&url) != url {
                eprintln!(
                    "vakt ledger store: the URL's password is kept in {} (readable by its owner only); to keep it out, leave it out of the URL and set PGPASSWORD for every vakt command on this data directory",
                    dir.db_path().display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Migrate { data } => {
            let dir = data.dir();
            match vakt_ledger::migrate::migrate(&dir)
                .with_context(|| format!("cannot migrate the ledger in {}", dir.path.display()))?
            {
                None => println!(
                    "vakt ledger migrate: {} already keeps its entries in the segments engine",
                    dir.path.display()
                ),
                Some(m) => {
                    println!(
                        "vakt ledger migrate: {} entries moved to the segments engine in {:.1} s, verified before and after",
                        thousands(m.entries),
                        m.seconds
                    );
                    println!(
                        "  on disk: {:.1} MiB before, {:.1} MiB after; the old database is kept as {} (remove it once you are satisfied)",
                        m.bytes_before as f64 / 1048576.0,
                        m.bytes_after as f64 / 1048576.0,
                        m.backup.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Anchor { data, out } => {
            let dir = data.dir();
            let line = vakt_ledger::anchor::latest(&dir)?.to_json_line();
            match out {
                Some(path) => {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    writeln!(f, "{line}")
                        .with_context(|| format!("cannot write to {}", path.display()))?;
                }
                None => println!("{line}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Verify(args) => {
            let dir = args.data.dir();
            let mut options = verify::VerifyOptions::default();
            if let Some(path) = &args.public_key {
                options.public_key = Some(vakt_ledger::keys::public_key_file(
                    path,
                    "give a copy of the data directory's ledger.pub",
                )?);
            }
            if let Some(path) = &args.anchor {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                options.anchors =
                    vakt_ledger::anchor::Anchor::parse_lines(&text, &path.display().to_string())?;
            }
            let mut bar: Option<crate::progress::Bar> = None;
            let r = verify::verify_with(&dir, &options, &mut |done, total| {
                bar.get_or_insert_with(|| crate::progress::items(total, "verifying"))
                    .0
                    .set_position(done)
            })
            .with_context(|| format!("cannot verify the ledger in {}", dir.path.display()))?;
            drop(bar);
            match &r.problem {
                None => {
                    println!(
                        "vakt ledger verify: {} entries, {} signed checkpoints, {} actions: intact",
                        thousands(r.entries as u64),
                        thousands(r.checkpoints as u64),
                        thousands(r.actions as u64)
                    );
                    if let Some((seq, hash)) = &r.last_checkpoint {
                        println!("  last checkpoint: entry {seq}, chain hash {hash}");
                    }
                    if r.anchors > 0 {
                        println!("  {} anchored checkpoint(s) held", r.anchors);
                    }
                    if !r.actions_chained {
                        println!("  alerts, decisions, tokens and users are not chained yet: this ledger was last written by an older vakt; the next `vakt watch` chains them");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(p) => {
                    println!("vakt ledger verify: BROKEN: {p}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["account", "customer", "canary", "alert"])))]
pub struct ScopeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Customers an account read.
    #[arg(long)]
    pub account: Option<String>,
    /// Every account that read a customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// A planted canary, by customer id, phone or email (needs --directory).
    #[arg(long)]
    pub canary: Option<String>,
    /// The account and time window of a recorded alert.
    #[arg(long)]
    pub alert: Option<String>,
    /// From this time (RFC 3339 or a date).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time (RFC 3339 or a date).
    #[arg(long)]
    pub until: Option<String>,
    /// Only accesses from this network (CIDR).
    #[arg(long)]
    pub ip: Option<String>,
    /// Directory file, to resolve canaries.
    #[arg(long, value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// Write the notification list (customer_id,categories,first_exposure,last_exposure).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

fn time(s: &Option<String>, default: Timestamp) -> Result<Timestamp> {
    match s {
        Some(s) => Ok(Timestamp::parse(s)?),
        None => Ok(default),
    }
}

pub fn scope(args: ScopeArgs) -> Result<ExitCode> {
    let dir = args.data.dir();
    let l = Ledger::open_read(&dir)?;
    let t0 = std::time::Instant::now();
    let customer = match (&args.customer, &args.canary) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(c)) => Some(canary_customer(c, args.directory.as_deref())?),
        _ => None,
    };
    if let Some(c) = customer {
        let accesses = l.scope_customer(&c)?;
        if args.format == "json" {
            println!("{}", serde_json::to_string_pretty(&accesses)?);
            return Ok(ExitCode::SUCCESS);
        }
        let accounts: std::collections::BTreeSet<&str> =
            accesses.iter().map(|a| a.account.as_str()).collect();
        println!(
            "customer {c}: {} accesses by {} accounts ({:.1} ms)",
            accesses.len(),
            accounts.len(),
            t0.elapsed().as_secs_f64() * 1000.0
        );
        println!(
            "  {:<24} {:<18} {:<16} {:<8} {:<28} source",
            "when", "account", "from", "action", "categories"
        );
        for a in &accesses {
            println!(
                "  {:<24} {:<18} {:<16} {:<8} {:<28} {}:{}",
                a.at.to_rfc3339(),
                a.account,
                a.source_ip,
                a.action,
                a.categories,
                a.source,
                a.line
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (account, since, until) = match (&args.account, &args.alert) {
        (Some(a), _) => (
            a.clone(),
            time(&args.since, Timestamp(i64::MIN))?,
            time(&args.until, Timestamp(i64::MAX))?,
        ),
        (None, Some(id)) => {
            let (a, first, last) = l.alert_window(id)?;
            (a, time(&args.since, first)?, time(&args.until, last)?)
        }
        _ => bail!("give --account, --customer, --canary or --alert"),
    };
    let ip = match &args.ip {
        Some(s) => Some(
            Cidr::parse(s)
                .with_context(|| format!("--ip `{s}` is not a network; write it as 10.1.2.0/24"))?,
        ),
        None => None,
    };
    let s = l.scope_account(&account, since, until, ip)?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if let Some(path) = &args.out {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        w.write_all(vakt_ledger::notice::recipients_csv(&s).as_bytes())?;
        w.flush()?;
    }
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "account {}: {} distinct customers in {} accesses ({:.1} ms)",
        s.account,
        thousands(s.customers.len() as u64),
        thousands(s.accesses),
        ms
    );
    if let (Some(first), Some(last)) = (
        s.customers.iter().map(|c| c.first).min(),
        s.customers.iter().map(|c| c.last).max(),
    ) {
        println!("  first access {first}, last {last}");
    }
    if s.unlisted_records > 0 {
        println!(
            "  plus {} records returned by exports and searches that name no customers",
            thousands(s.unlisted_records)
        );
    }
    for (cat, n) in &s.by_category {
        println!("  {cat:<16} {} customers", thousands(*n));
    }
    let mut ips: Vec<_> = s.source_ips.iter().collect();
    ips.sort_by(|a, b| b.1.cmp(a.1));
    for (ip, n) in ips.iter().take(10) {
        println!("  from {ip:<20} {} accesses", thousands(**n));
    }
    if let Some(path) = &args.out {
        println!(
            "  notification list: {} ({} customers)",
            path.display(),
            thousands(s.customers.len() as u64)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A canary's customer id, from its id, phone number or email.
fn canary_customer(key: &str, directory: Option<&std::path::Path>) -> Result<String> {
    let Some(path) = directory else {
        return Ok(key.to_owned());
    };
    let d = Directory::load(path)?;
    d.canaries
        .iter()
        .find(|c| c.customer_id == key || c.contact.iter().any(|x| x == key))
        .map(|c| c.customer_id.clone())
        .with_context(|| {
            format!(
                "no [[canary]] in {} has the id, phone or email `{key}`",
                path.display()
            )
        })
}

#[derive(clap::Args, Clone, Debug)]
pub struct ExposureArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Exponent of the value formula value = value_per_record x records^m.
    #[arg(long, default_value_t = 1.5)]
    pub m: f64,
    /// Rows to show.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

pub fn exposure(args: ExposureArgs) -> Result<ExitCode> {
    if !(1.0..=3.0).contains(&args.m) {
        bail!("--m {} is outside 1.0 to 3.0; the value of a store grows faster than its size, so m > 1 (1.5 is a fair start)", args.m);
    }
    let l = Ledger::open_read(&args.data.dir())?;
    let rows = l.exposure(args.m)?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("vakt exposure: value = value_per_record x records^{} (value_per_record: summed sensitivity of the categories read)", args.m);
    println!(
        "  {:<13} {:<22} {:>10} {:>9} {:>12}  categories",
        "", "name", "customers", "x median", "value"
    );
    for r in rows.iter().take(args.top) {
        let cats: Vec<&str> = r.categories.iter().map(String::as_str).collect();
        println!(
            "  {:<13} {:<22} {:>10} {:>9.1} {:>12.3e}  {}",
            r.kind,
            r.name,
            thousands(r.customers),
            r.vs_median,
            r.value,
            cats.join(",")
        );
        println!("  {:<13} {:<22} {}", "", "", r.advice);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Clone, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The alert (incident id) to report on.
    #[arg(long)]
    pub alert: String,
    /// md or html.
    #[arg(long, default_value = "md", value_parser = ["md", "html"])]
    pub format: String,
    /// The directory naming the notification regimes (`[notification]`,
    /// an organisation's `regimes`); without it, GDPR's.
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// Write the notice to the customers (Art. 34) instead, in this
    /// language: sv, nb, de, nl or en.
    #[arg(long, value_name = "LOCALE", value_parser = ["sv", "nb", "de", "nl", "en"])]
    pub notice: Option<String>,
}

pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let directory = args.directory.as_deref().map(Directory::load).transpose()?;
    let dir = args.data.dir();
    let mut l = Ledger::open_read(&dir)?;
    let mut r = vakt_ledger::report::draft(&l, &args.alert)?;
    if let Some(d) = &directory {
        r.regimes = d.regimes_for(r.alert.organization.as_deref());
    }
    // A draft names the customers: who took one is on record.
    l.audited(&crate::cmd::who(), |_| {
        Ok(((), Some(Audit::new("report.export", &args.alert))))
    })?;
    let md = match args
        .notice
        .as_deref()
        .and_then(vakt_ledger::notice::Locale::parse)
    {
        Some(locale) => vakt_ledger::notice::customer_notice(&r, locale),
        None => r.markdown(vakt_detect::detectors::remediation(&r.alert.rule)),
    };
    if args.format == "html" {
        println!("{}", vakt_ledger::report::to_html(&md));
    } else {
        println!("{md}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum DecisionsCommand {
    /// Decisions in force now (or --all), as a table or JSON.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Also expired ones.
        #[arg(long)]
        all: bool,
        /// In force at this time instead of now (RFC 3339), e.g. for a replayed month.
        #[arg(long)]
        at: Option<String>,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Add a decision by hand.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// account, ip or organization.
        #[arg(long)]
        scope: Scope,
        /// The account name, organisation id, or IP address or network (192.0.2.0/24).
        #[arg(long)]
        value: String,
        /// throttle, step_up or block.
        #[arg(long)]
        action: Action,
        /// How long: 90s, 10m, 1h, 7d (at most 365d).
        #[arg(long)]
        ttl: String,
        #[arg(long, default_value = "added by hand")]
        reason: String,
    },
    /// Lift a decision.
    Delete {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
}

pub fn decisions(cmd: DecisionsCommand) -> Result<ExitCode> {
    match cmd {
        DecisionsCommand::List {
            data,
            all,
            at,
            format,
        } => {
            let l = Ledger::open_read(&data.dir())?;
            let at = match (all, at) {
                (true, _) => None,
                (false, Some(t)) => Some(Timestamp::parse(&t)?),
                (false, None) => Some(Timestamp::now()),
            };
            let list = l.decisions(at)?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{} decision(s){}",
                    list.len(),
                    if all { "" } else { " in force" }
                );
                for d in &list {
                    println!(
                        "  {:<40} {:<8} {:<13} {:<20} until {}  ({})",
                        d.id, d.action, d.scope, d.value, d.expires, d.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DecisionsCommand::Add {
            data,
            scope,
            value,
            action,
            ttl,
            reason,
        } => {
            let ttl_ms = vakt_event::decision::ttl_ms(&ttl).context("--ttl")?;
            let d = Decision::manual(scope, &value, action, reason, Timestamp::now(), ttl_ms)
                .context("--value")?;
            let mut l = crate::cmd::open_to_change(&data.dir())?;
            l.audited(&crate::cmd::who(), |l| {
                l.put_decision(&d)?;
                Ok(((), Some(Audit::decision("decision.add", &d))))
            })?;
            l.close()?;
            println!("{}", d.id);
            Ok(ExitCode::SUCCESS)
        }
        DecisionsCommand::Delete { data, id } => {
            let mut l = crate::cmd::open_to_change(&data.dir())?;
            let found = l.audited(&crate::cmd::who(), |l| {
                let found = l.delete_decision(&id)?;
                Ok((found, found.then(|| Audit::new("decision.lift", &id))))
            })?;
            l.close()?;
            if found {
                println!("lifted {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("vakt: no decision {id}; `vakt decisions list --all` shows them");
                Ok(ExitCode::from(1))
            }
        }
    }
}
