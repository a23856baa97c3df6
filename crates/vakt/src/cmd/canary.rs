//! `vakt canary new`: fake customers to plant, with what to paste where.

use anyhow::{bail, Result};
use vakt_canary::{generate, Locale, Options};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum CanaryCommand {
    /// Generate canary customers: directory entries, CSV and SQL to plant them.
    New(NewArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct NewArgs {
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    /// sv-SE, nb-NO, de-DE, nl-NL or en-US.
    #[arg(long, default_value = "sv-SE")]
    pub locale: String,
    /// Email domain you control (default: example.net, reserved for examples).
    #[arg(long, default_value = "example.net")]
    pub domain: String,
    /// Customer id prefix, to look like your own ids.
    #[arg(long, default_value = "C-99")]
    pub id_prefix: String,
    /// Phone numbers you control, e.g. +4790012 (required where no fiction range is known).
    #[arg(long)]
    pub phone_prefix: Option<String>,
    /// SQL table to insert into.
    #[arg(long, default_value = "customers")]
    pub table: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn sql(s: &str) -> String {
    s.replace('\'', "''")
}

pub fn run(cmd: CanaryCommand) -> Result<()> {
    let CanaryCommand::New(a) = cmd;
    let Some(locale) = Locale::parse(&a.locale) else {
        bail!(
            "unknown --locale `{}`; use sv-SE, nb-NO, de-DE, nl-NL or en-US",
            a.locale
        );
    };
    let canaries = generate(&Options {
        count: a.count,
        locale,
        domain: &a.domain,
        id_prefix: &a.id_prefix,
        phone_prefix: a.phone_prefix.as_deref(),
        seed: a.seed,
    })?;
    println!("# 1. Add to the directory (TOML):");
    for c in &canaries {
        println!(
            "[[canary]]\ncustomer_id = \"{}\"\nlabel = \"planted by vakt canary new, {}\"\ncontact = [\"{}\", \"{}\"]\n",
            c.customer_id, c.locale, c.phone, c.email
        );
    }
    println!("# 2. Plant them in the customer database (SQL; adapt the columns):");
    for c in &canaries {
        println!(
            "INSERT INTO {} (customer_id, first_name, last_name, street, postal_code, city, country, phone, email, national_id) VALUES ('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');",
            a.table,
            sql(&c.customer_id),
            sql(&c.first_name),
            sql(&c.last_name),
            sql(&c.street),
            sql(&c.postal_code),
            sql(&c.city),
            sql(&c.country),
            sql(&c.phone),
            sql(&c.email),
            sql(&c.national_id)
        );
    }
    println!("\n# 3. Or as CSV:");
    println!(
        "customer_id,first_name,last_name,street,postal_code,city,country,phone,email,national_id"
    );
    for c in &canaries {
        println!(
            "{},{},{},\"{}\",{},\"{}\",{},{},{},{}",
            c.customer_id,
            c.first_name,
            c.last_name,
            c.street,
            c.postal_code,
            c.city,
            c.country,
            c.phone,
            c.email,
            c.national_id
        );
    }
    eprintln!("vakt canary new: {} canaries; national ids fail their check digit or use never-issued ranges, phones are from fiction ranges or your prefix", canaries.len());
    Ok(())
}
