//! csvlog records read as their lines arrive, each byte once.
//!
//! A record spans lines while a quoted field is open (a statement over
//! several lines). Reading it field by field as the lines come, keeping
//! the quote state between lines, costs one pass: buffering the record and
//! handing it to a CSV reader at its end read every byte twice, and
//! recounting the quotes of the whole record at each line (finding 10) made
//! a record of n lines cost n^2. A record ends when its quotes balance,
//! whatever their place, and is dropped past [`MAX_CSV_RECORD`] bytes.

/// Longest csvlog record kept while its quotes are open.
pub const MAX_CSV_RECORD: usize = 4 << 20;

/// Columns kept: up to `message` (14th); the rest are only counted.
pub const KEPT: usize = 14;

/// What one line did to the record being read.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// A quoted field is still open: the record goes on.
    Open,
    /// The record is complete; its columns are in [`CsvRecord::field`].
    Complete,
    /// The record ran past [`MAX_CSV_RECORD`] and was dropped.
    TooLong,
}

/// One csvlog record being read.
pub struct CsvRecord {
    fields: Vec<String>,
    /// Columns kept; those after are only counted.
    keep: usize,
    /// Columns begun so far (the one being read included).
    columns: usize,
    in_quotes: bool,
    /// Bytes of the record so far, line breaks included.
    len: usize,
}

impl Default for CsvRecord {
    fn default() -> Self {
        CsvRecord {
            fields: Vec::new(),
            keep: KEPT,
            columns: 0,
            in_quotes: false,
            len: 0,
        }
    }
}

/// The fields of the first record of `text` (pgaudit's logged
/// parameters), read as a csvlog record is.
pub fn first_record(text: &str) -> Vec<String> {
    let mut r = CsvRecord {
        keep: usize::MAX,
        ..CsvRecord::default()
    };
    for line in text.split('\n') {
        if r.feed(line) != Fed::Open {
            break;
        }
    }
    r.fields.truncate(r.columns);
    r.fields
}

impl CsvRecord {
    /// Whether a record spans lines and waits for the next.
    pub fn is_open(&self) -> bool {
        self.in_quotes
    }

    /// Columns of the last complete record.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Column `i` of the last complete record (unescaped), `""` past [`KEPT`].
    pub fn field(&self, i: usize) -> &str {
        self.fields.get(i).map_or("", String::as_str)
    }

    /// Takes column `i` of the last complete record out, `""` past [`KEPT`].
    pub fn take_field(&mut self, i: usize) -> String {
        self.fields
            .get_mut(i)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Drops a record left open (the input ended inside it).
    pub fn reset(&mut self) {
        self.in_quotes = false;
        self.len = 0;
        self.columns = 0;
    }

    pub fn feed(&mut self, line: &str) -> Fed {
        if self.in_quotes {
            self.len += 1;
        } else {
            self.len = 0;
            self.columns = 1;
            self.fields.iter_mut().for_each(String::clear);
        }
        if self.len + line.len() > MAX_CSV_RECORD {
            self.reset();
            return Fed::TooLong;
        }
        self.len += line.len();
        if self.in_quotes {
            self.push("\n");
        }
        let b = line.as_bytes();
        let (mut i, mut start) = (0, 0);
        while i < b.len() {
            match b[i] {
                b'"' => {
                    self.push(&line[start..i]);
                    if self.in_quotes && b.get(i + 1) == Some(&b'"') {
                        self.push("\"");
                        i += 2;
                    } else {
                        self.in_quotes = !self.in_quotes;
                        i += 1;
                    }
                    start = i;
                }
                b',' if !self.in_quotes => {
                    self.push(&line[start..i]);
                    self.columns += 1;
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        self.push(&line[start..]);
        if self.in_quotes {
            Fed::Open
        } else {
            Fed::Complete
        }
    }

    fn push(&mut self, s: &str) {
        let i = self.columns - 1;
        if i == self.fields.len() && i < self.keep {
            self.fields.push(String::new());
        }
        if let Some(f) = self.fields.get_mut(i) {
            f.push_str(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same columns as the csv crate reads from the whole record.
    #[test]
    fn records_over_lines_read_as_the_csv_crate_reads_them() {
        let records = [
            "2026-11-02 08:15:03.789 UTC,cc_app,crm,4712,10.50.0.7:51234,,,,,,,LOG,,\"AUDIT: SESSION,1,1,READ,SELECT,,,\"\"select 1\"\",<none>\",,,,,,,,,\"\"",
            "a,\"b\nc\n\",\"\",\"\"\"x\"\"\",d,e,f,g,h,i,j,k,l,\"m\n,n\"\"\",o",
            "a,b",
        ];
        for text in records {
            let mut r = CsvRecord::default();
            let lines: Vec<&str> = text.split('\n').collect();
            for (n, line) in lines.iter().enumerate() {
                let fed = r.feed(line);
                let last = n + 1 == lines.len();
                assert_eq!(fed, if last { Fed::Complete } else { Fed::Open }, "{text}");
            }
            let rec = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes())
                .records()
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(r.columns(), rec.len(), "{text}");
            for i in 0..rec.len().min(KEPT) {
                assert_eq!(r.field(i), &rec[i], "{text} column {i}");
            }
        }
    }

    #[test]
    fn parameters_read_as_the_csv_crate_reads_them() {
        for text in [
            "C-0000042,\"a,b\"",
            "1",
            "\"x\"\"y\",,\"multi\nline\",z",
            "a,b\nc,d",
        ] {
            let rec = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(text.as_bytes())
                .records()
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(first_record(text), rec.iter().collect::<Vec<_>>(), "{text}");
        }
    }

    #[test]
    fn a_record_past_the_bound_is_dropped_and_the_next_read() {
        let mut r = CsvRecord::default();
        assert_eq!(r.feed("a,\"open"), Fed::Open);
        let big = "x".repeat(MAX_CSV_RECORD);
        assert_eq!(r.feed(&big), Fed::TooLong);
        assert!(!r.is_open());
        assert_eq!(r.feed("b,c"), Fed::Complete);
        assert_eq!((r.field(0), r.field(1), r.columns()), ("b", "c", 2));
    }
}
