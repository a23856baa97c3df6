//! `vakt bench parse`: what parsing costs as input grows, where hostile
//! input could make it grow faster than the input: a pgaudit csvlog record
//! whose statement spans ever more lines. The cost per line must stay flat
//! (linear parsing); the figures print side by side with the ratio.

use crate::fmt::thousands;
use anyhow::{anyhow, Result};
use std::sync::Arc;
use std::time::Instant;
use vakt_event::{Directory, Origin};
use vakt_ingest::parsers::{self, ParserContext};

#[derive(clap::Args, Clone, Debug)]
pub struct ParseBenchArgs {
    /// Lines of the longest record; the bench also runs a tenth and a hundredth of it.
    #[arg(long, default_value_t = 200_000)]
    pub lines: usize,
}

/// One csvlog record: a SELECT whose column list spans `lines` lines.
fn record(lines: usize) -> String {
    let mut text = String::from(
        "2026-11-02 08:15:03.789 UTC,cc_app,crm,4712,10.50.0.7:51234,,,,,,,LOG,,\"AUDIT: OBJECT,1,1,READ,SELECT,TABLE,public.account,select name",
    );
    for i in 0..lines {
        text.push_str(&format!("\n  , col_{i}"));
    }
    text.push_str("\nfrom account where id = 7,<none>\",,,,,,,,,\"\"");
    text
}

/// Seconds to parse `text` line by line with the pgaudit parser.
fn parse_secs(text: &str) -> Result<f64> {
    let format = parsers::format("pgaudit").ok_or_else(|| anyhow!("no pgaudit parser"))?;
    let ctx = ParserContext {
        directory: Arc::new(Directory::from_toml(
            "[postgres]\nkey_columns = [\"id\"]\n",
            "bench",
        )?),
    };
    let mut parser = (format.build)(&ctx);
    let origin = Origin::default();
    let mut out = Vec::new();
    let started = Instant::now();
    for line in text.lines() {
        parser
            .parse_line(line, &origin, &mut out)
            .map_err(|e| anyhow!("{e}"))?;
    }
    parser.finish(&mut out).map_err(|e| anyhow!("{e}"))?;
    if out.len() != 1 {
        return Err(anyhow!("expected one access, got {}", out.len()));
    }
    Ok(started.elapsed().as_secs_f64())
}

pub fn run(args: ParseBenchArgs) -> Result<()> {
    let sizes = [args.lines / 100, args.lines / 10, args.lines].map(|n| n.max(1));
    println!("pgaudit csvlog: one record whose statement spans n lines");
    println!(
        "{:>10}  {:>10}  {:>12}  {:>14}",
        "lines", "bytes", "seconds", "ns per line"
    );
    let mut per_line = Vec::new();
    for n in sizes {
        let text = record(n);
        let secs = parse_secs(&text)?;
        let ns = secs * 1e9 / n as f64;
        per_line.push(ns);
        println!(
            "{:>10}  {:>10}  {:>12.4}  {:>14.0}",
            thousands(n as u64),
            thousands(text.len() as u64),
            secs,
            ns
        );
    }
    println!(
        "cost per line, longest record vs shortest: {:.2}x (1x is linear; quadratic would be {}x)",
        per_line[2] / per_line[0],
        sizes[2] / sizes[0]
    );
    Ok(())
}
