//! Inputs for `vakt bench`: many accounts, plain access events.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{self, Write};
use vakt_event::{AccessEvent, Action, Event, Timestamp};

/// Accounts per reseller organisation in the bench directory.
pub const PER_ORG: u32 = 10;

/// Writes `n` time-ordered access events for `accounts` accounts spread
/// over one day of event time.
pub fn bench_events(n: u64, accounts: u32, seed: u64, mut w: impl Write) -> io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Timestamp::parse("2026-11-02T00:00:00Z")
        .expect("constant date")
        .0;
    let step = 86_400_000.0 / n.max(1) as f64;
    let cats = [
        "name".to_string(),
        "address".to_string(),
        "phone".to_string(),
    ];
    for i in 0..n {
        let a = rng.gen_range(0..accounts.max(1));
        let org = a / PER_ORG;
        let ev = AccessEvent {
            timestamp: Timestamp(start + (i as f64 * step) as i64),
            user: format!("acct{a:06}"),
            source_ip: Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                10,
                (org >> 8) as u8,
                org as u8,
                2 + (a % PER_ORG) as u8,
            ))),
            action: Action::Lookup,
            customer_ids: vec![format!(
                "C-{:07}",
                (2_000_000.0 * rng.gen::<f64>().powi(3)) as u32
            )],
            records: 1,
            categories: cats.to_vec(),
            case_id: rng
                .gen_bool(0.9)
                .then(|| format!("K-{:07}", rng.gen_range(0..5_000_000))),
            ..Default::default()
        };
        w.write_all(Event::Access(ev).to_json_line().as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// A directory declaring the bench accounts in reseller organisations.
pub fn bench_directory(accounts: u32) -> String {
    let mut s = String::new();
    let orgs = accounts.div_ceil(PER_ORG);
    for o in 0..orgs {
        s += &format!(
            "[[organization]]\nid = \"org{o:05}\"\nkind = \"reseller\"\nnetworks = [\"10.{}.{}.0/24\"]\n\n",
            (o >> 8) as u8,
            o as u8
        );
    }
    for a in 0..accounts {
        s += &format!(
            "[[account]]\nname = \"acct{a:06}\"\norganization = \"org{:05}\"\nrole = \"sales\"\n\n",
            a / PER_ORG
        );
    }
    s
}
