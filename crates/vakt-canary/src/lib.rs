//! Canary customers: realistic fake people to plant in the customer
//! database. Nobody has a reason to read one, so any read is a
//! high-confidence alert (`canary` rule), and a call to a canary's phone
//! or a mail to its address proves the data left.
//!
//! They must never collide with a real person: phone numbers come from
//! ranges regulators reserve for fiction (or a prefix you control), email
//! addresses from a domain you give (default `example.net`, reserved by
//! RFC 2606), and national ids are built with a deliberately wrong check
//! digit (or from ranges that are never issued), so no validator accepts
//! them. Each locale's check is in [`national_id_is_valid`].

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Locale {
    SvSe,
    NbNo,
    DeDe,
    NlNl,
    EnUs,
}

impl Locale {
    pub const ALL: [Locale; 5] = [
        Locale::SvSe,
        Locale::NbNo,
        Locale::DeDe,
        Locale::NlNl,
        Locale::EnUs,
    ];

    pub fn parse(s: &str) -> Option<Locale> {
        Self::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(s))
    }

    pub fn tag(self) -> &'static str {
        match self {
            Locale::SvSe => "sv-SE",
            Locale::NbNo => "nb-NO",
            Locale::DeDe => "de-DE",
            Locale::NlNl => "nl-NL",
            Locale::EnUs => "en-US",
        }
    }

    /// A range reserved for fiction, where one is documented.
    fn fiction_phone(self, rng: &mut ChaCha8Rng) -> Option<String> {
        match self {
            // PTS (Sweden): 070-174 06 05 to 070-174 06 99 are for fiction.
            Locale::SvSe => Some(format!("+4670174{:04}", rng.gen_range(605..700))),
            // NANPA: 555-0100 to 555-0199 are for fiction.
            Locale::EnUs => Some(format!(
                "+1{}5550{:03}",
                ["202", "312", "415", "617"][rng.gen_range(0..4)],
                rng.gen_range(100..200)
            )),
            // Bundesnetzagentur: 030 23125 000 to 999 for film and television.
            Locale::DeDe => Some(format!("+493023125{:03}", rng.gen_range(0..1000))),
            Locale::NbNo | Locale::NlNl => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("{0} has no phone range reserved for fiction that vakt knows; give --phone-prefix with a number range you control")]
    NoPhoneRange(&'static str),
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CanaryCustomer {
    pub customer_id: String,
    pub first_name: String,
    pub last_name: String,
    pub street: String,
    pub postal_code: String,
    pub city: String,
    pub country: String,
    pub phone: String,
    pub email: String,
    pub national_id: String,
    pub locale: String,
}

pub struct Options<'a> {
    pub count: usize,
    pub locale: Locale,
    pub domain: &'a str,
    pub id_prefix: &'a str,
    /// Digits that numbers you control start with, e.g. `+4790012` (the
    /// rest is filled with random digits up to `phone_digits`).
    pub phone_prefix: Option<&'a str>,
    pub seed: u64,
}

struct Names {
    first: &'static [&'static str],
    last: &'static [&'static str],
    streets: &'static [&'static str],
    cities: &'static [(&'static str, &'static str)],
    country: &'static str,
}

fn names(l: Locale) -> Names {
    match l {
        Locale::SvSe => Names {
            first: &[
                "Anna", "Eva", "Maria", "Karin", "Sara", "Erik", "Lars", "Karl", "Johan", "Nils",
                "Ingrid", "Oskar",
            ],
            last: &[
                "Andersson",
                "Johansson",
                "Karlsson",
                "Nilsson",
                "Eriksson",
                "Larsson",
                "Olsson",
                "Persson",
                "Svensson",
                "Lindqvist",
            ],
            streets: &[
                "Storgatan",
                "Drottninggatan",
                "Kungsgatan",
                "Vasagatan",
                "Skolgatan",
                "Parkvägen",
            ],
            cities: &[
                ("111 22", "Stockholm"),
                ("411 03", "Göteborg"),
                ("211 20", "Malmö"),
                ("753 20", "Uppsala"),
            ],
            country: "SE",
        },
        Locale::NbNo => Names {
            first: &[
                "Ingrid", "Kari", "Nora", "Emma", "Ole", "Lars", "Jan", "Per", "Knut", "Sigrid",
            ],
            last: &[
                "Hansen",
                "Johansen",
                "Olsen",
                "Larsen",
                "Andersen",
                "Pedersen",
                "Nilsen",
                "Kristiansen",
            ],
            streets: &[
                "Storgata",
                "Kirkeveien",
                "Parkveien",
                "Skolegata",
                "Strandgata",
            ],
            cities: &[
                ("0150", "Oslo"),
                ("5003", "Bergen"),
                ("7011", "Trondheim"),
                ("4006", "Stavanger"),
            ],
            country: "NO",
        },
        Locale::DeDe => Names {
            first: &[
                "Anna", "Lena", "Marie", "Julia", "Lukas", "Felix", "Jonas", "Paul", "Sabine",
                "Thomas",
            ],
            last: &[
                "Müller",
                "Schmidt",
                "Schneider",
                "Fischer",
                "Weber",
                "Meyer",
                "Wagner",
                "Becker",
                "Hoffmann",
            ],
            streets: &[
                "Hauptstraße",
                "Schulstraße",
                "Gartenstraße",
                "Bahnhofstraße",
                "Lindenweg",
            ],
            cities: &[
                ("10115", "Berlin"),
                ("20095", "Hamburg"),
                ("80331", "München"),
                ("50667", "Köln"),
            ],
            country: "DE",
        },
        Locale::NlNl => Names {
            first: &[
                "Emma", "Sophie", "Julia", "Daan", "Sem", "Lucas", "Anna", "Thomas", "Eva", "Bram",
            ],
            last: &[
                "de Jong",
                "Jansen",
                "de Vries",
                "van den Berg",
                "Bakker",
                "Visser",
                "Smit",
                "Meijer",
            ],
            streets: &[
                "Kerkstraat",
                "Schoolstraat",
                "Dorpsstraat",
                "Molenweg",
                "Stationsweg",
            ],
            cities: &[
                ("1012 AB", "Amsterdam"),
                ("3011 AA", "Rotterdam"),
                ("3511 AA", "Utrecht"),
                ("2511 AA", "Den Haag"),
            ],
            country: "NL",
        },
        Locale::EnUs => Names {
            first: &[
                "Mary", "Linda", "Susan", "Karen", "James", "John", "Robert", "Michael", "David",
                "Jennifer",
            ],
            last: &[
                "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
                "Taylor",
            ],
            streets: &[
                "Main St", "Oak Ave", "Maple St", "Cedar Ln", "Elm St", "Park Ave",
            ],
            cities: &[
                ("10001", "New York, NY"),
                ("60601", "Chicago, IL"),
                ("94103", "San Francisco, CA"),
                ("02108", "Boston, MA"),
            ],
            country: "US",
        },
    }
}

fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Luhn check digit of `s` (digits only).
fn luhn_digit(s: &str) -> u32 {
    let sum: u32 = s
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Norwegian fødselsnummer control digits (None when the number cannot have any).
fn no_controls(d: &[u32]) -> Option<(u32, u32)> {
    let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let k1 = (11 - w1.iter().zip(d).map(|(w, x)| w * x).sum::<u32>() % 11) % 11;
    if k1 == 10 {
        return None;
    }
    let mut d10 = d[..9].to_vec();
    d10.push(k1);
    let k2 = (11 - w2.iter().zip(&d10).map(|(w, x)| w * x).sum::<u32>() % 11) % 11;
    (k2 != 10).then_some((k1, k2))
}

/// German tax id (Steuer-ID) check digit, ISO 7064 MOD 11,10.
fn de_check(d: &[u32]) -> u32 {
    let mut product = 10;
    for &x in d {
        let mut sum = (x + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    (11 - product) % 10
}

fn nl_sum(d: &[u32]) -> i64 {
    let mut s: i64 = d[..8]
        .iter()
        .enumerate()
        .map(|(i, &x)| (9 - i as i64) * x as i64)
        .sum();
    s -= d[8] as i64;
    s
}

fn national_id(l: Locale, rng: &mut ChaCha8Rng) -> String {
    let birth = (
        rng.gen_range(1950..2004),
        rng.gen_range(1..13u32),
        rng.gen_range(1..29u32),
    );
    match l {
        Locale::SvSe => {
            let body = format!(
                "{:02}{:02}{:02}{}",
                birth.0 % 100,
                birth.1,
                birth.2,
                digits(rng, 3)
            );
            let wrong = (luhn_digit(&body) + 1 + rng.gen_range(0..9)) % 10;
            format!("{}-{}{}", &body[..6], &body[6..], wrong)
        }
        Locale::NbNo => loop {
            let s = format!(
                "{:02}{:02}{:02}{}",
                birth.2,
                birth.1,
                birth.0 % 100,
                digits(rng, 3)
            );
            let d: Vec<u32> = s.bytes().map(|b| (b - b'0') as u32).collect();
            let (k1, k2) = match no_controls(&d) {
                Some(k) => k,
                None => (rng.gen_range(0..10), rng.gen_range(0..10)),
            };
            // The second control digit is made wrong on purpose.
            let out = format!("{s}{k1}{}", (k2 + 1 + rng.gen_range(0..9)) % 10);
            if !national_id_is_valid(l, &out) {
                return out;
            }
        },
        Locale::DeDe => loop {
            let s = format!("{}{}", rng.gen_range(1..10), digits(rng, 9));
            let d: Vec<u32> = s.bytes().map(|b| (b - b'0') as u32).collect();
            let out = format!("{s}{}", (de_check(&d) + 1 + rng.gen_range(0..9)) % 10);
            if !national_id_is_valid(l, &out) {
                return out;
            }
        },
        Locale::NlNl => loop {
            let out = digits(rng, 9);
            if !national_id_is_valid(l, &out) {
                return out;
            }
        },
        // Area 666 is never assigned.
        Locale::EnUs => format!(
            "666-{:02}-{:04}",
            rng.gen_range(1..100),
            rng.gen_range(1..10000)
        ),
    }
}

/// Whether `id` passes the locale's own validity check. Canaries never do.
pub fn national_id_is_valid(l: Locale, id: &str) -> bool {
    let d: Vec<u32> = id
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| (b - b'0') as u32)
        .collect();
    match l {
        Locale::SvSe => {
            d.len() == 10 && {
                let s: String = d[..9].iter().map(|x| char::from(b'0' + *x as u8)).collect();
                luhn_digit(&s) == d[9]
            }
        }
        Locale::NbNo => {
            d.len() == 11 && no_controls(&d).is_some_and(|(k1, k2)| k1 == d[9] && k2 == d[10])
        }
        Locale::DeDe => d.len() == 11 && d[0] != 0 && de_check(&d[..10]) == d[10],
        Locale::NlNl => d.len() == 9 && nl_sum(&d) % 11 == 0 && nl_sum(&d) != 0,
        Locale::EnUs => {
            d.len() == 9 && {
                let area = d[0] * 100 + d[1] * 10 + d[2];
                let group = d[3] * 10 + d[4];
                let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
                area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
            }
        }
    }
}

/// `count` canaries for `locale`.
pub fn generate(o: &Options) -> Result<Vec<CanaryCustomer>, CanaryError> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let n = names(o.locale);
    let mut out = Vec::with_capacity(o.count);
    // Consecutive numbers from a seed-chosen start: unique within a batch.
    let first_id = o.seed.wrapping_mul(7919) % 100_000;
    for i in 0..o.count {
        let first = n.first.choose(&mut rng).copied().unwrap_or("Anna");
        let last = n.last.choose(&mut rng).copied().unwrap_or("Smith");
        let (postal, city) = n.cities.choose(&mut rng).copied().unwrap_or(("", ""));
        let phone = match (o.phone_prefix, o.locale.fiction_phone(&mut rng)) {
            (Some(p), _) => format!(
                "{p}{}",
                digits(
                    &mut rng,
                    11usize
                        .saturating_sub(p.trim_start_matches('+').len())
                        .max(2)
                )
            ),
            (None, Some(p)) => p,
            (None, None) => return Err(CanaryError::NoPhoneRange(o.locale.tag())),
        };
        let street = match o.locale {
            Locale::EnUs => format!(
                "{} {}",
                rng.gen_range(10..9999),
                n.streets.choose(&mut rng).copied().unwrap_or("Main St")
            ),
            _ => format!(
                "{} {}",
                n.streets.choose(&mut rng).copied().unwrap_or(""),
                rng.gen_range(1..120)
            ),
        };
        let local: String = format!("{}.{}", first, last)
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        out.push(CanaryCustomer {
            customer_id: format!("{}{:05}", o.id_prefix, first_id + i as u64),
            first_name: first.into(),
            last_name: last.into(),
            street,
            postal_code: postal.into(),
            city: city.into(),
            country: n.country.into(),
            phone,
            email: format!("{local}.{}@{}", digits(&mut rng, 4), o.domain),
            national_id: national_id(o.locale, &mut rng),
            locale: o.locale.tag().into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(locale: Locale, seed: u64) -> Options<'static> {
        Options {
            count: 2000,
            locale,
            domain: "example.net",
            id_prefix: "C-99",
            phone_prefix: Some("+4790012"),
            seed,
        }
    }

    #[test]
    fn canary_ids_are_unique_in_a_batch_whatever_the_seed() {
        let many = generate(&Options {
            count: 150_000,
            ..opts(Locale::EnUs, u64::MAX)
        })
        .unwrap();
        let ids: std::collections::HashSet<&str> =
            many.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(ids.len(), many.len());
    }

    #[test]
    fn no_canary_ever_has_a_valid_national_id() {
        for l in Locale::ALL {
            for seed in 0..5 {
                for c in generate(&opts(l, seed)).unwrap() {
                    assert!(
                        !national_id_is_valid(l, &c.national_id),
                        "{l:?} {}",
                        c.national_id
                    );
                }
            }
        }
    }

    #[test]
    fn the_validators_accept_known_valid_ids() {
        // Published examples: Skatteverket's 811218-9876, a valid Norwegian test number,
        // a German example Steuer-ID, a BSN that passes the 11-proof, an ordinary SSN shape.
        assert!(national_id_is_valid(Locale::SvSe, "811218-9876"));
        assert!(national_id_is_valid(Locale::NbNo, "01010750160"));
        assert!(national_id_is_valid(Locale::DeDe, "65929970489"));
        assert!(national_id_is_valid(Locale::NlNl, "111222333"));
        assert!(national_id_is_valid(Locale::EnUs, "123-45-6789"));
    }

    #[test]
    fn phones_come_from_fiction_ranges_or_the_given_prefix() {
        let sv = generate(&Options {
            phone_prefix: None,
            ..opts(Locale::SvSe, 1)
        })
        .unwrap();
        assert!(sv
            .iter()
            .all(|c| c.phone.starts_with("+467017406") || c.phone.starts_with("+46701740")));
        let us = generate(&Options {
            phone_prefix: None,
            ..opts(Locale::EnUs, 1)
        })
        .unwrap();
        assert!(us
            .iter()
            .all(|c| &c.phone[5..9] == "5550" && c.phone[9..].parse::<u32>().unwrap() >= 100));
        let no = generate(&opts(Locale::NbNo, 1)).unwrap();
        assert!(no.iter().all(|c| c.phone.starts_with("+4790012")));
        assert!(generate(&Options {
            phone_prefix: None,
            ..opts(Locale::NlNl, 1)
        })
        .is_err());
        assert!(sv.iter().all(|c| c.email.ends_with("@example.net")));
    }
}
