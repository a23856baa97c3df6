//! `[detectors.RULE]` tables of the directory: a user's overrides of
//! detector parameters, globally or per organisation.
//!
//! ```toml
//! [detectors.rate]
//! factor = 5.0
//!
//! [detectors.no_business_context.organization.callcenter]
//! min_reads = 30
//! ```
//!
//! This crate does not know the detectors (they live downstream), so it
//! keeps each value raw with its place in the file; the detectors' builder
//! checks names, types and ranges against what each detector declares and
//! reports a mistake at that place.

use crate::directory::DirectoryError;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;
use toml::Spanned;

/// Where something is in the directory file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl Place {
    /// An error at this place; `message` says what to change.
    pub fn error(&self, message: String) -> DirectoryError {
        DirectoryError {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
            message,
        }
    }
}

/// One parameter as the user wrote it.
#[derive(Clone, Debug)]
pub struct Setting {
    pub name: String,
    pub value: toml::Value,
    pub at: Place,
}

/// One `[detectors.RULE]` or `[detectors.RULE.organization.ORG]` table.
#[derive(Clone, Debug)]
pub struct RuleSettings {
    pub rule: String,
    pub at: Place,
    /// The organisation the values apply to; `None` for every organisation.
    pub organization: Option<(String, Place)>,
    pub values: Vec<Setting>,
}

/// The `[detectors]` table of one chunk of the file, spans relative to it.
#[derive(Debug, Default)]
pub(crate) struct RawDetectors(Vec<(Spanned<String>, RawRule)>);

/// Parameter names and values, as written.
type RawValues = Vec<(Spanned<String>, Spanned<toml::Value>)>;

#[derive(Debug, Default)]
pub(crate) struct RawRule {
    values: RawValues,
    organizations: Vec<(Spanned<String>, RawValues)>,
}

/// A TOML table, keys with their spans.
struct Entries<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    out.push((k, map.next_value()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawDetectors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawDetectors(Entries::<RawRule>::deserialize(d)?.0))
    }
}

impl<'de> Deserialize<'de> for RawRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RuleVisitor;
        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = RawRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of detector parameters, e.g. [detectors.rate] factor = 5.0")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRule, A::Error> {
                let mut rule = RawRule::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    if k.get_ref() == "organization" {
                        let orgs: Entries<Entries<Spanned<toml::Value>>> = map.next_value()?;
                        rule.organizations
                            .extend(orgs.0.into_iter().map(|(o, v)| (o, v.0)));
                    } else {
                        rule.values.push((k, map.next_value()?));
                    }
                }
                Ok(rule)
            }
        }
        d.deserialize_map(RuleVisitor)
    }
}

impl RawDetectors {
    /// The tables with their places; `place` turns a chunk offset into one.
    pub(crate) fn locate(self, place: &dyn Fn(usize) -> Place) -> Vec<RuleSettings> {
        let values = |v: Vec<(Spanned<String>, Spanned<toml::Value>)>| -> Vec<Setting> {
            v.into_iter()
                .map(|(k, v)| Setting {
                    name: k.get_ref().clone(),
                    at: place(k.span().start),
                    value: v.into_inner(),
                })
                .collect()
        };
        let mut out = Vec::new();
        for (rule, raw) in self.0 {
            let at = place(rule.span().start);
            if !raw.values.is_empty() || raw.organizations.is_empty() {
                out.push(RuleSettings {
                    rule: rule.get_ref().clone(),
                    at: at.clone(),
                    organization: None,
                    values: values(raw.values),
                });
            }
            for (org, v) in raw.organizations {
                out.push(RuleSettings {
                    rule: rule.get_ref().clone(),
                    at: at.clone(),
                    organization: Some((org.get_ref().clone(), place(org.span().start))),
                    values: values(v),
                });
            }
        }
        out
    }
}

/// Refuses a parameter set twice for the same rule and organisation (the
/// TOML parser catches this within a chunk, not across chunks).
pub(crate) fn check_unique(all: &[RuleSettings]) -> Result<(), DirectoryError> {
    let mut seen = std::collections::HashMap::new();
    for r in all {
        let org = r.organization.as_ref().map(|(o, _)| o.as_str());
        for s in &r.values {
            if let Some(first) = seen.insert((&r.rule, org, &s.name), &s.at) {
                return Err(s.at.error(format!(
                    "`{}` of [detectors.{}] is already set at line {}; keep one",
                    s.name, r.rule, first.line
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Directory;

    const TEXT: &str = "[[organization]]\nid = \"callcenter\"\n\n[detectors.rate]\nfactor = 5.0\n\n[detectors.no_business_context.organization.callcenter]\nmin_reads = 30\n";

    #[test]
    fn detector_tables_keep_their_values_and_lines() {
        let d = Directory::from_toml(TEXT, "dir.toml").unwrap();
        let table = |rule: &str| d.detectors.iter().find(|t| t.rule == rule).unwrap();
        let rate = table("rate");
        assert!(rate.organization.is_none());
        assert_eq!(rate.values[0].name, "factor");
        assert_eq!(rate.values[0].value, toml::Value::Float(5.0));
        assert_eq!((rate.values[0].at.line, rate.values[0].at.column), (5, 1));
        let nbc = table("no_business_context");
        let (org, at) = nbc.organization.as_ref().unwrap();
        assert_eq!((org.as_str(), at.line), ("callcenter", 7));
        assert_eq!(nbc.values[0].at.line, 8);
    }

    #[test]
    fn an_undeclared_organisation_and_a_value_set_twice_are_located() {
        let bad = TEXT.replace("organization.callcenter", "organization.callcentre");
        let e = Directory::from_toml(&bad, "dir.toml").unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("`callcentre` is not declared"), "{e}");

        let twice = [table("rate", 2), table("rate", 9)];
        let e = super::check_unique(&twice).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.message.contains("already set at line 2"), "{e}");
    }

    /// `[detectors.RULE]` with `factor` set at `line`.
    fn table(rule: &str, line: usize) -> super::RuleSettings {
        let at = super::Place {
            path: "d".into(),
            line,
            column: 1,
        };
        super::RuleSettings {
            rule: rule.into(),
            at: at.clone(),
            organization: None,
            values: vec![super::Setting {
                name: "factor".into(),
                value: toml::Value::Integer(5),
                at,
            }],
        }
    }
}
