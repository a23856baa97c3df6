//! Detector parameters: every threshold a detector uses, declared once with
//! its default and meaning, overridable in the directory's
//! `[detectors.RULE]` tables (globally, or per organisation for the
//! detectors whose figures differ between organisations).
//!
//! The directory keeps the values raw with their places (vakt-event does
//! not know the detectors); [`settings`] checks them against what each
//! detector declares and stops with the file, line and the valid names.

use crate::detector::DetectorInfo;
use rustc_hash::FxHashMap;
use vakt_event::tuning::Setting;
use vakt_event::{Directory, DirectoryError};

/// What values a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number of at least 1 (events, customers, days, bytes).
    Count,
    /// A number above 0 (a multiple of a baseline, seconds).
    Number,
    /// A number above 0 and at most 1.
    Share,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Count => "a whole number of at least 1",
            Kind::Number => "a number above 0",
            Kind::Share => "a number above 0 and at most 1",
        }
    }
}

/// One tunable threshold of a detector.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub default: f64,
    pub kind: Kind,
    /// The unit and what the value does, for `vakt detectors` and errors.
    pub meaning: &'static str,
}

impl Param {
    pub const fn count(name: &'static str, default: f64, meaning: &'static str) -> Param {
        Param {
            name,
            default,
            kind: Kind::Count,
            meaning,
        }
    }

    pub const fn number(name: &'static str, default: f64, meaning: &'static str) -> Param {
        Param {
            name,
            default,
            kind: Kind::Number,
            meaning,
        }
    }

    pub const fn share(name: &'static str, default: f64, meaning: &'static str) -> Param {
        Param {
            name,
            default,
            kind: Kind::Share,
            meaning,
        }
    }

    /// The value of `s` if it fits this parameter.
    fn check(&self, s: &Setting) -> Result<f64, DirectoryError> {
        let v = match (&s.value, self.kind) {
            (toml::Value::Integer(i), _) => Some(*i as f64),
            (toml::Value::Float(f), Kind::Number | Kind::Share) => Some(*f),
            _ => None,
        };
        let fits = |v: f64| match self.kind {
            // 2^53: every count up to it is exact as a float.
            Kind::Count => (1.0..=9_007_199_254_740_992.0).contains(&v),
            Kind::Number => v.is_finite() && v > 0.0,
            Kind::Share => v > 0.0 && v <= 1.0,
        };
        v.filter(|v| fits(*v)).ok_or_else(|| {
            s.at.error(format!(
                "`{} = {}` does not fit: it must be {} ({}; default {})",
                self.name,
                s.value,
                self.kind.as_str(),
                self.meaning,
                self.default
            ))
        })
    }
}

/// A detector's parameter values, in the order of its declaration.
#[derive(Clone, Debug)]
pub struct Values {
    params: &'static [Param],
    values: Vec<f64>,
}

impl Values {
    pub fn defaults(params: &'static [Param]) -> Values {
        Values {
            params,
            values: params.iter().map(|p| p.default).collect(),
        }
    }

    /// The value of a declared parameter. Asking for an undeclared one is a
    /// mistake in the detector's code, caught by every test that builds it.
    pub fn get(&self, name: &str) -> f64 {
        let i = self.params.iter().position(|p| p.name == name);
        self.values[i.unwrap_or_else(|| panic!("parameter `{name}` is not declared"))]
    }

    /// Each parameter with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Param, f64)> + '_ {
        self.params.iter().zip(self.values.iter().copied())
    }

    fn set(&mut self, info: &DetectorInfo, s: &Setting) -> Result<(), DirectoryError> {
        let Some(i) = self.params.iter().position(|p| p.name == s.name) else {
            let valid: Vec<&str> = self.params.iter().map(|p| p.name).collect();
            return Err(s.at.error(if valid.is_empty() {
                format!(
                    "`{}` has no parameters; remove `{}`",
                    info.id, s.name
                )
            } else {
                format!(
                    "`{}` has no parameter `{}`; its parameters are {} (`vakt detectors` explains them)",
                    info.id,
                    s.name,
                    valid.join(", ")
                )
            }));
        };
        self.values[i] = self.params[i].check(s)?;
        Ok(())
    }
}

/// The parameters one detector runs with: everywhere, and where an
/// organisation has its own.
#[derive(Clone, Debug)]
pub struct Settings {
    pub info: &'static DetectorInfo,
    pub global: Values,
    /// Complete values (global ones with the organisation's overrides).
    pub organizations: Vec<(String, Values)>,
}

impl Settings {
    pub fn defaults(info: &'static DetectorInfo) -> Settings {
        Settings {
            info,
            global: Values::defaults(info.params),
            organizations: Vec::new(),
        }
    }

    /// The values as text, the same for two settings whose
    /// [`Settings::same_values`] holds: kept with a detector's snapshot,
    /// so state learned under other thresholds is not taken back.
    pub fn fingerprint(&self) -> String {
        let mut o: Vec<(&str, &[f64])> = self
            .organizations
            .iter()
            .map(|(name, v)| (name.as_str(), v.values.as_slice()))
            .collect();
        o.sort_by(|a, b| a.0.cmp(b.0));
        format!("{:?} {:?}", self.global.values, o)
    }

    /// Whether `other` holds the same values, everywhere and per
    /// organisation (in any order): a reload keeps the detector's state then.
    pub fn same_values(&self, other: &Settings) -> bool {
        self.info.id == other.info.id && self.fingerprint() == other.fingerprint()
    }

    /// Typed thresholds built from these values, per organisation.
    pub fn per_org<T>(&self, make: impl Fn(&Values) -> T) -> PerOrg<T> {
        PerOrg {
            global: make(&self.global),
            organizations: self
                .organizations
                .iter()
                .map(|(o, v)| (o.clone(), make(v)))
                .collect(),
        }
    }
}

/// Thresholds with per-organisation exceptions; an organisation without
/// its own costs no lookup when no organisation has any.
#[derive(Debug)]
pub struct PerOrg<T> {
    global: T,
    organizations: FxHashMap<String, T>,
}

impl<T> PerOrg<T> {
    pub fn get(&self, organization: Option<&str>) -> &T {
        if self.organizations.is_empty() {
            return &self.global;
        }
        organization
            .and_then(|o| self.organizations.get(o))
            .unwrap_or(&self.global)
    }
}

/// Every detector's settings (in `infos` order): the defaults with the
/// directory's `[detectors.RULE]` overrides, each checked against the
/// detector's declared parameters.
pub fn settings(
    infos: &[&'static DetectorInfo],
    directory: &Directory,
) -> Result<Vec<Settings>, DirectoryError> {
    let mut all: Vec<Settings> = infos.iter().copied().map(Settings::defaults).collect();
    let per_org: Vec<&str> = infos
        .iter()
        .filter(|i| i.per_organization)
        .map(|i| i.id)
        .collect();
    // Global values first, so an organisation's table starts from them
    // wherever it stands in the file.
    let mut tables: Vec<_> = directory.detectors.iter().collect();
    tables.sort_by_key(|t| t.organization.is_some());
    for table in tables {
        let Some(s) = all.iter_mut().find(|s| s.info.id == table.rule) else {
            let valid: Vec<&str> = infos.iter().map(|i| i.id).collect();
            return Err(table.at.error(format!(
                "there is no detector `{}`; the detectors are {}",
                table.rule,
                valid.join(", ")
            )));
        };
        let info = s.info;
        let values = match &table.organization {
            None => &mut s.global,
            Some((org, at)) => {
                if !s.info.per_organization {
                    return Err(at.error(format!(
                        "`{}` cannot be tuned per organisation; set its parameters in [detectors.{}] (per organisation: {})",
                        table.rule,
                        table.rule,
                        per_org.join(", ")
                    )));
                }
                let start = s.global.clone();
                let i = match s.organizations.iter().position(|(o, _)| o == org) {
                    Some(i) => i,
                    None => {
                        s.organizations.push((org.clone(), start));
                        s.organizations.len() - 1
                    }
                };
                &mut s.organizations[i].1
            }
        };
        for v in &table.values {
            values.set(info, v)?;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use crate::detectors::settings;
    use vakt_event::{Directory, DirectoryError};

    const ORGS: &str =
        "[[organization]]\nid = \"callcenter\"\n\n[[organization]]\nid = \"stores\"\n";

    fn load(tables: &str) -> Result<Vec<super::Settings>, DirectoryError> {
        let dir = Directory::from_toml(&format!("{ORGS}\n{tables}"), "dir.toml")?;
        settings(&dir)
    }

    /// The 1-based line of the first line of `text` that starts with `start`.
    fn line_of(tables: &str, start: &str) -> usize {
        let text = format!("{ORGS}\n{tables}");
        text.lines().position(|l| l.starts_with(start)).unwrap() + 1
    }

    fn value(all: &[super::Settings], rule: &str, org: Option<&str>, name: &str) -> f64 {
        let s = all.iter().find(|s| s.info.id == rule).unwrap();
        match org {
            None => s.global.get(name),
            Some(o) => s
                .organizations
                .iter()
                .find(|(n, _)| n == o)
                .map(|(_, v)| v.get(name))
                .unwrap(),
        }
    }

    #[test]
    fn overrides_apply_and_an_organisation_starts_from_the_global_values() {
        let tables = "[detectors.no_business_context.organization.callcenter]\nmin_reads = 30\n\n[detectors.no_business_context]\nfactor = 3\ncase_share = 0.75\n";
        let all = load(tables).unwrap();
        let nbc = |org, name| value(&all, "no_business_context", org, name);
        assert_eq!(nbc(None, "min_reads"), 10.0);
        assert_eq!(nbc(None, "factor"), 3.0);
        assert_eq!(nbc(Some("callcenter"), "min_reads"), 30.0);
        assert_eq!(nbc(Some("callcenter"), "factor"), 3.0);
        assert_eq!(nbc(Some("callcenter"), "case_share"), 0.75);
        assert_eq!(value(&all, "rate", None, "factor"), 4.0);
    }

    #[test]
    fn an_unknown_detector_is_located_and_the_valid_ones_named() {
        let tables = "[detectors.rates]\nfactor = 5.0\n";
        let e = load(tables).unwrap_err();
        assert_eq!(e.line, line_of(tables, "[detectors"), "{e}");
        assert!(e.to_string().starts_with("dir.toml:"), "{e}");
        assert!(e.message.contains("`rates`"), "{e}");
        assert!(e.message.contains("rate, automation"), "{e}");
    }

    #[test]
    fn an_unknown_parameter_is_located_and_the_valid_ones_named() {
        let tables = "[detectors.rate]\nfactor = 5.0\nfactr = 5.0\n";
        let e = load(tables).unwrap_err();
        assert_eq!(e.line, line_of(tables, "factr"), "{e}");
        assert!(
            e.message
                .contains("its parameters are min_per_hour, factor, own_hours"),
            "{e}"
        );
        let e = load("[detectors.canary]\nthreshold = 1\n").unwrap_err();
        assert!(e.message.contains("`canary` has no parameters"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_out_of_range_are_located_with_what_fits() {
        for (bad, wants) in [
            ("factor = \"five\"", "a number above 0"),
            ("factor = 0", "a number above 0"),
            ("factor = -2.5", "a number above 0"),
            ("factor = nan", "a number above 0"),
            ("min_per_hour = 0", "a whole number of at least 1"),
            ("min_per_hour = 12.5", "a whole number of at least 1"),
        ] {
            let tables = format!("[detectors.rate]\n{bad}\n");
            let e = load(&tables).unwrap_err();
            assert_eq!(e.line, line_of(&tables, bad), "{bad}: {e}");
            assert!(e.message.contains(wants), "{bad}: {e}");
        }
        let tables = "[detectors.login_failures]\nmin_failure_share = 1.5\n";
        let e = load(tables).unwrap_err();
        assert!(e.message.contains("at most 1"), "{e}");
        assert!(e.message.contains("default 0.8"), "{e}");
    }

    #[test]
    fn per_organisation_values_are_refused_where_they_do_not_apply() {
        let tables = "[detectors.bulk_read.organization.stores]\nmin_records = 10\n";
        let e = load(tables).unwrap_err();
        assert_eq!(e.line, line_of(tables, "[detectors"), "{e}");
        assert!(
            e.message
                .contains("rate, volume_peers, no_business_context"),
            "{e}"
        );

        let tables = "[detectors.rate.organization.callcentre]\nfactor = 2\n";
        let e = load(tables).unwrap_err();
        assert_eq!(e.line, line_of(tables, "[detectors"), "{e}");
        assert!(e.message.contains("`callcentre` is not declared"), "{e}");
    }

    #[test]
    fn a_directory_without_detector_tables_gives_the_defaults() {
        let all = load("").unwrap();
        assert!(all.iter().all(|s| s.organizations.is_empty()));
        assert!(all
            .iter()
            .all(|s| s.global.iter().all(|(p, v)| v == p.default)));
    }
}
