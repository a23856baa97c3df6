//! Country and autonomous system of an address, from MaxMind MMDB files
//! (GeoLite2/GeoIP2 Country, City or ASN databases, or any MMDB with the
//! same field names).

use maxminddb::{geoip2, Reader};
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot open the GeoIP database: {message}; give a MaxMind .mmdb file (e.g. GeoLite2-Country.mmdb)")]
pub struct GeoIpError {
    pub path: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Geo {
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

pub struct GeoIp {
    readers: Vec<Reader<Vec<u8>>>,
}

impl GeoIp {
    /// Opens one or more MMDB files; lookups merge what each one knows.
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<GeoIp, GeoIpError> {
        let mut readers = Vec::new();
        for p in paths {
            let p = p.as_ref();
            readers.push(Reader::open_readfile(p).map_err(|e| GeoIpError {
                path: p.display().to_string(),
                message: e.to_string(),
            })?);
        }
        Ok(GeoIp { readers })
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        let mut geo = Geo::default();
        for r in &self.readers {
            if geo.country.is_none() {
                if let Ok(c) = r.lookup::<geoip2::Country>(ip) {
                    geo.country = c.country.and_then(|c| c.iso_code).map(str::to_owned);
                }
            }
            if geo.asn.is_none() {
                if let Ok(a) = r.lookup::<geoip2::Asn>(ip) {
                    geo.asn = a.autonomous_system_number;
                    geo.as_org = a.autonomous_system_organization.map(str::to_owned);
                }
            }
        }
        (geo != Geo::default()).then_some(geo)
    }
}
