//! GeoIP enrichment against MaxMind's own test databases (see tests/data/SOURCE.md).

use std::path::PathBuf;
use vakt_enrich::GeoIp;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn country_and_asn_merge_from_two_databases() {
    let g = GeoIp::open(&[
        data("GeoIP2-Country-Test.mmdb"),
        data("GeoLite2-ASN-Test.mmdb"),
    ])
    .unwrap();
    let se = g.lookup("89.160.20.112".parse().unwrap()).unwrap();
    assert_eq!(se.country.as_deref(), Some("SE"));
    let us = g.lookup("214.78.120.1".parse().unwrap()).unwrap();
    assert_eq!(us.country.as_deref(), Some("US"));
    let telstra = g.lookup("1.128.0.1".parse().unwrap()).unwrap();
    assert_eq!(telstra.asn, Some(1221));
    assert_eq!(telstra.as_org.as_deref(), Some("Telstra Pty Ltd"));
    assert!(g.lookup("10.0.0.1".parse().unwrap()).is_none());
}

#[test]
fn a_missing_database_says_what_to_give() {
    let err = GeoIp::open(&[data("nope.mmdb")]).err().unwrap();
    assert!(err.to_string().contains("MaxMind .mmdb"), "{err}");
}
