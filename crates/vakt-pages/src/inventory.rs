//! The PCI DSS 6.4.3 inventory of the payment pages' scripts: each
//! script version with its origin, SHA-384, who loaded it, the
//! justification the directory gives for it, and when it was first and
//! last seen; as CSV (for a spreadsheet or an assessor's tool) or
//! Markdown (for a report), with the destinations each page sent data to.

use vakt_event::page::{origin_of, KnownDestination, KnownScript, PageEntry};

/// One inventory row: a script version and what the directory says of it.
pub struct Row<'a> {
    pub script: &'a KnownScript,
    /// The directory's justification; none: the script is not listed.
    pub justification: Option<&'a str>,
    pub may_change: bool,
}

/// The rows of `scripts`, each matched with its page's `[[page.script]]`.
pub fn rows<'a>(scripts: &'a [KnownScript], pages: &'a [PageEntry]) -> Vec<Row<'a>> {
    scripts
        .iter()
        .map(|s| {
            let expected = pages
                .iter()
                .find(|p| p.url.get_ref() == &s.page)
                .and_then(|p| p.expected(&s.url, s.inline));
            Row {
                script: s,
                justification: expected.map(|e| e.justification.as_str()),
                may_change: expected.is_some_and(|e| e.may_change),
            }
        })
        .collect()
}

/// A cell a spreadsheet would run as a formula starts with `'`.
fn defuse(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// The inventory as CSV, one row per script version.
pub fn to_csv(rows: &[Row]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "page",
        "script",
        "origin",
        "inline",
        "sha384",
        "bytes",
        "loaded_by",
        "justification",
        "may_change",
        "first_seen",
        "last_seen",
    ])?;
    for r in rows {
        let s = r.script;
        w.write_record([
            defuse(&s.page),
            defuse(&s.url),
            if s.inline {
                String::new()
            } else {
                origin_of(&s.url)
            },
            s.inline.to_string(),
            s.sha384.clone(),
            s.bytes.to_string(),
            defuse(&s.loaded_by),
            defuse(r.justification.unwrap_or("")),
            r.may_change.to_string(),
            s.first_seen.to_rfc3339(),
            s.last_seen.to_rfc3339(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Markdown cells: no line breaks, `|` escaped.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// The inventory as Markdown: per page, its scripts (unlisted ones marked
/// **not justified**) and its destinations.
pub fn to_markdown(rows: &[Row], destinations: &[KnownDestination]) -> String {
    let mut out = String::from("# Payment page script inventory (PCI DSS 6.4.3)\n");
    let mut pages: Vec<&str> = rows.iter().map(|r| r.script.page.as_str()).collect();
    pages.extend(destinations.iter().map(|d| d.page.as_str()));
    pages.sort_unstable();
    pages.dedup();
    for page in pages {
        out.push_str(&format!("\n## {}\n\n", cell(page)));
        out.push_str("| script | sha384 | loaded by | justification | may change | first seen | last seen |\n|---|---|---|---|---|---|---|\n");
        for r in rows.iter().filter(|r| r.script.page == page) {
            let s = r.script;
            out.push_str(&format!(
                "| {} | `{}` | {} | {} | {} | {} | {} |\n",
                cell(&if s.inline {
                    "(inline)".to_string()
                } else {
                    s.url.clone()
                }),
                s.sha384,
                cell(&s.loaded_by),
                r.justification
                    .map_or("**not justified**".to_string(), cell),
                if r.may_change { "yes" } else { "no" },
                s.first_seen.to_rfc3339(),
                s.last_seen.to_rfc3339()
            ));
        }
        let dests: Vec<&KnownDestination> =
            destinations.iter().filter(|d| d.page == page).collect();
        if !dests.is_empty() {
            out.push_str("\n| destination | kinds | first sent by | first seen | last seen |\n|---|---|---|---|---|\n");
            for d in dests {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    cell(&d.origin),
                    cell(&d.kinds),
                    cell(&d.initiator),
                    d.first_seen.to_rfc3339(),
                    d.last_seen.to_rfc3339()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::Directory;

    #[test]
    fn rows_carry_the_directory_justification_and_csv_defuses_formulas() {
        let d = Directory::from_toml(
            "[[page]]\nurl = \"https://shop.example/pay\"\n[[page.script]]\nurl = \"https://chat.vendor.example/*\"\njustification = \"customer chat\"\nmay_change = true\n",
            "d",
        )
        .unwrap();
        let scripts = vec![
            KnownScript {
                page: "https://shop.example/pay".into(),
                url: "https://chat.vendor.example/w.js".into(),
                sha384: "sha384-a".into(),
                loaded_by: "page".into(),
                ..Default::default()
            },
            KnownScript {
                page: "https://shop.example/pay".into(),
                url: "https://x.example/s.js".into(),
                sha384: "sha384-b".into(),
                loaded_by: "=HYPERLINK(\"x\")".into(),
                ..Default::default()
            },
        ];
        let rows = rows(&scripts, &d.pages);
        assert_eq!(rows[0].justification, Some("customer chat"));
        assert!(rows[0].may_change);
        assert_eq!(rows[1].justification, None);
        let csv = to_csv(&rows).unwrap();
        assert!(
            csv.contains("https://chat.vendor.example,false,sha384-a"),
            "{csv}"
        );
        assert!(csv.contains("'=HYPERLINK"), "{csv}");
        let md = to_markdown(&rows, &[]);
        assert!(md.contains("| customer chat | yes |"), "{md}");
        assert!(md.contains("**not justified**"), "{md}");
    }
}
