//! A light scan of SQL text: statement boundaries, the verb, and the
//! tables a statement names. Not a parser: it skips comments, string
//! literals (also `E'...'` and dollar quoting) and reads quoted
//! identifiers, which is all it takes to find `FROM`, `JOIN`, `INTO`,
//! `UPDATE`, `COPY` and `TABLE` targets at any nesting depth. It runs once
//! per simple query and once per prepared statement, in time linear in the
//! text; a statement of a shape already scanned (`shape`: the same text
//! but for its numbers) is not scanned again. A table reached only
//! through a view, a function or dynamic SQL is not seen.

/// What a statement does, by its leading keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Read,
    CopyTo,
    CopyFrom,
    Update,
    Delete,
    /// Anything else: DDL, transaction control, SET, SHOW, CALL, ...
    Other,
}

/// One statement of a query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    /// Byte range of the statement in the query string.
    pub start: usize,
    pub end: usize,
    pub verb: Verb,
    /// Tables named, lower case, as written (`schema.table` or `table`).
    pub tables: Vec<String>,
}

/// A keyword or an unquoted name, as written, with what the scan asks of
/// it classified once, when it is read: the scan runs per query, and most
/// words are keywords. Lower-cased only when kept as a table name.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Word<'a> {
    raw: &'a [u8],
    /// A table name may follow: `FROM`, `JOIN`, `INTO`, `UPDATE`, `COPY`,
    /// `TABLE`, `USING`.
    table_after: bool,
    /// A keyword that cannot be a table's alias (nor a table name).
    not_alias: bool,
}

impl<'a> Word<'a> {
    fn new(raw: &'a [u8]) -> Word<'a> {
        // Keywords are short: lower-cased on the stack; a longer word is a name.
        let mut buf = [0u8; 12];
        let Some(lower) = buf.get_mut(..raw.len()) else {
            return Word {
                raw,
                table_after: false,
                not_alias: false,
            };
        };
        lower.copy_from_slice(raw);
        lower.make_ascii_lowercase();
        let lower = &*lower;
        Word {
            raw,
            table_after: matches!(
                lower,
                b"from" | b"join" | b"into" | b"update" | b"copy" | b"table" | b"using"
            ),
            not_alias: matches!(
                lower,
                b"where"
                    | b"join"
                    | b"inner"
                    | b"left"
                    | b"right"
                    | b"full"
                    | b"cross"
                    | b"natural"
                    | b"on"
                    | b"group"
                    | b"order"
                    | b"limit"
                    | b"offset"
                    | b"having"
                    | b"union"
                    | b"except"
                    | b"intersect"
                    | b"for"
                    | b"window"
                    | b"returning"
                    | b"set"
                    | b"values"
                    | b"select"
                    | b"to"
                    | b"from"
                    | b"with"
                    | b"lateral"
                    | b"only"
                    | b"default"
                    | b"using"
                    | b"tablesample"
                    | b"fetch"
                    | b"as"
                    | b"do"
                    | b"overriding"
                    | b"query"
            ),
        }
    }

    fn is(self, keyword: &str) -> bool {
        self.raw.eq_ignore_ascii_case(keyword.as_bytes())
    }

    fn is_any(self, keywords: &[&str]) -> bool {
        keywords.iter().any(|k| self.is(k))
    }

    fn lower(self) -> String {
        // Borrowed, not copied, when the bytes are UTF-8 (they always are here).
        String::from_utf8_lossy(self.raw).to_ascii_lowercase()
    }
}

/// What a byte can be, looked up once per byte: the scan runs per query.
const SPACE: u8 = 1;
const WORD_START: u8 = 2;
const WORD_PART: u8 = 4;
const DIGIT: u8 = 8;
/// A byte [`shape`] looks at: digits, quotes, comment starts, `$`, `;`.
const SHAPE_STOP: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_whitespace() {
            t[b] = SPACE;
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            t[b] = WORD_START | WORD_PART;
        } else if c.is_ascii_digit() {
            t[b] = DIGIT | WORD_PART | SHAPE_STOP;
        } else if c == b'$' {
            t[b] = WORD_PART | SHAPE_STOP;
        } else if matches!(c, b'\'' | b'"' | b'-' | b'/' | b';') {
            t[b] = SHAPE_STOP;
        }
        b += 1;
    }
    t
};

fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// Where the run of bytes of class `of` starting at `from` ends.
fn run_end(s: &[u8], from: usize, of: u8) -> usize {
    s.get(from..)
        .and_then(|rest| rest.iter().position(|&b| class(b) & of == 0))
        .map_or(s.len(), |n| from + n)
}

#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Word(Word<'a>),
    Quoted(String),
    Open,
    Close,
    Comma,
    Dot,
    Semi,
    Other,
}

struct Lexer<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Option<(usize, Tok<'a>)> {
        let s = self.s;
        loop {
            let c = *s.get(self.at)?;
            if class(c) & SPACE != 0 {
                self.at = run_end(s, self.at + 1, SPACE);
            } else if c == b'-' && s.get(self.at + 1) == Some(&b'-') {
                while self.at < s.len() && s[self.at] != b'\n' {
                    self.at += 1;
                }
            } else if c == b'/' && s.get(self.at + 1) == Some(&b'*') {
                // Nested block comments, as PostgreSQL has them.
                let mut depth = 0usize;
                while self.at < s.len() {
                    if s[self.at..].starts_with(b"/*") {
                        depth += 1;
                        self.at += 2;
                    } else if s[self.at..].starts_with(b"*/") {
                        depth -= 1;
                        self.at += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.at += 1;
                    }
                }
            } else {
                break;
            }
        }
        let start = self.at;
        let c = s[start];
        let tok = match c {
            b'(' => {
                self.at += 1;
                Tok::Open
            }
            b')' => {
                self.at += 1;
                Tok::Close
            }
            b',' => {
                self.at += 1;
                Tok::Comma
            }
            b'.' => {
                self.at += 1;
                Tok::Dot
            }
            b';' => {
                self.at += 1;
                Tok::Semi
            }
            b'\'' => {
                self.string(false);
                Tok::Other
            }
            b'"' => {
                self.at += 1;
                let mut id = Vec::new();
                while self.at < s.len() {
                    if s[self.at] == b'"' {
                        if s.get(self.at + 1) == Some(&b'"') {
                            id.push(b'"');
                            self.at += 2;
                            continue;
                        }
                        self.at += 1;
                        break;
                    }
                    id.push(s[self.at]);
                    self.at += 1;
                }
                Tok::Quoted(String::from_utf8_lossy(&id).into_owned())
            }
            b'$' => {
                // $1 parameter, or a dollar-quoted string $tag$...$tag$.
                let e = s[start + 1..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .map_or(s.len(), |n| start + 1 + n);
                let quote = e < s.len()
                    && s[e] == b'$'
                    && (e == start + 1 || !s[start + 1].is_ascii_digit());
                if quote {
                    let tag = &s[start..=e];
                    let body = e + 1;
                    self.at = s[body..]
                        .windows(tag.len())
                        .position(|w| w == tag)
                        .map_or(s.len(), |n| body + n + tag.len());
                } else {
                    self.at = e.max(start + 1);
                }
                Tok::Other
            }
            c if class(c) & WORD_START != 0 => {
                self.at = run_end(s, start + 1, WORD_PART);
                // E'...' strings take backslash escapes.
                if self.at - start == 1
                    && (c == b'e' || c == b'E')
                    && s.get(self.at) == Some(&b'\'')
                {
                    self.string(true);
                    return Some((start, Tok::Other));
                }
                Tok::Word(Word::new(&s[start..self.at]))
            }
            // A number is one token, not one per digit (the scan treats
            // a run of other tokens as one).
            c if class(c) & DIGIT != 0 => {
                self.at = run_end(s, start + 1, DIGIT);
                Tok::Other
            }
            _ => {
                self.at += 1;
                Tok::Other
            }
        };
        Some((start, tok))
    }

    /// Skips a '...' literal starting at the quote.
    fn string(&mut self, escapes: bool) {
        let s = self.s;
        self.at += 1;
        while self.at < s.len() {
            match s[self.at] {
                b'\\' if escapes => self.at += 2,
                b'\'' if s.get(self.at + 1) == Some(&b'\'') => self.at += 2,
                b'\'' => {
                    self.at += 1;
                    return;
                }
                _ => self.at += 1,
            }
        }
        self.at = s.len();
    }
}

/// The longest statement whose shape is taken ([`shape`]).
pub(super) const SHAPE_MAX: usize = 1024;

/// The shape of a one-statement text, for remembering what its scan
/// found: the text with each number replaced by `0`, written to `key`,
/// and the statement's byte range (as [`scan`] gives it). Two texts of
/// one shape scan alike (same verb, same tables): a number is a token of
/// its own, names no table and sets no verb, and its replacement keeps
/// every other byte and token boundary. `None` (scan the text) for
/// anything whose tokens need more than byte classes to find: quotes,
/// comments, dollar signs other than `$n` parameters, more than one
/// statement, or a text longer than [`SHAPE_MAX`].
pub(super) fn shape(sql: &str, key: &mut Vec<u8>) -> Option<(usize, usize)> {
    let s = sql.as_bytes();
    if s.len() > SHAPE_MAX {
        return None;
    }
    key.clear();
    let mut end = s.len();
    let mut i = 0;
    loop {
        // Copied as they are, up to the next byte that may need a look.
        let plain = s[i..]
            .iter()
            .position(|&b| class(b) & SHAPE_STOP != 0)
            .map_or(s.len(), |n| i + n);
        key.extend_from_slice(&s[i..plain]);
        i = plain;
        let Some(&b) = s.get(i) else {
            break;
        };
        match b {
            b'0'..=b'9' => {
                let digits = run_end(s, i, DIGIT);
                if i == 0 || class(s[i - 1]) & WORD_PART == 0 {
                    key.push(b'0'); // a number
                } else {
                    key.extend_from_slice(&s[i..digits]); // a name's digits
                }
                i = digits;
            }
            b'$' => {
                // A `$n` parameter, kept as written; anything else may quote.
                let digits = run_end(s, i + 1, DIGIT);
                let next = s.get(digits).copied();
                if digits == i + 1 || next.is_some_and(|n| class(n) & WORD_PART != 0) {
                    return None;
                }
                key.extend_from_slice(&s[i..digits]);
                i = digits;
            }
            b'-' | b'/' => {
                if matches!((b, s.get(i + 1)), (b'-', Some(b'-')) | (b'/', Some(b'*'))) {
                    return None; // a comment
                }
                key.push(b);
                i += 1;
            }
            b';' => {
                // After `name.` the scan reads the next token as the name's
                // part, so this `;` would not end the statement.
                let before = key.iter().rev().find(|&&c| class(c) & SPACE == 0);
                let rest = &s[i + 1..];
                if before == Some(&b'.') || rest.iter().any(|&c| class(c) & SPACE == 0) {
                    return None;
                }
                end = i;
                key.extend_from_slice(&s[i..]);
                break;
            }
            _ => return None, // a quote
        }
    }
    let start = s.iter().position(|&b| class(b) & SPACE == 0)?;
    (start < end).then_some((start, end))
}

/// Splits a query string into statements and scans each one.
pub fn scan(sql: &str) -> Vec<Scanned> {
    scan_at_most(sql, usize::MAX).0
}

/// [`scan`], stopping once `max` statements are scanned: `false` with
/// them when more follow. What it keeps is bounded by `max`, not by how
/// many statements the text holds.
pub(super) fn scan_at_most(sql: &str, max: usize) -> (Vec<Scanned>, bool) {
    let mut lex = Lexer {
        s: sql.as_bytes(),
        at: 0,
    };
    let mut out = Vec::new();
    let mut cur: Option<Scanned> = None;
    let mut depth = 0usize;
    let mut first_word: Option<Word> = None;
    // After FROM/JOIN/...: expecting a table name (and, in a FROM list, more after commas).
    let mut want_table = false;
    let mut in_from_list = false;
    let mut last_table_end = false; // just read a table name: a `.` continues it
    let mut after_table = false; // in a FROM list after a table (alias allowed)
    let mut copy_seen = false;
    while let Some((start, tok)) = lex.next() {
        if tok == Tok::Semi {
            if let Some(mut c) = cur.take() {
                c.end = start;
                out.push(c);
            }
            depth = 0;
            first_word = None;
            want_table = false;
            in_from_list = false;
            last_table_end = false;
            after_table = false;
            copy_seen = false;
            continue;
        }
        if cur.is_none() && out.len() >= max {
            return (out, false);
        }
        let c = cur.get_or_insert_with(|| Scanned {
            start,
            end: sql.len(),
            verb: Verb::Other,
            tables: Vec::new(),
        });
        let word = match tok {
            Tok::Word(w) => Some(w),
            _ => None,
        };
        // The verb: the first keyword, and for WITH the first verb at depth 0 after it.
        if let Some(w) = word {
            if first_word.is_none() {
                first_word = Some(w);
                c.verb = verb_of(w);
                copy_seen = w.is("copy");
            } else if depth == 0
                && first_word.is_some_and(|f| f.is("with"))
                && w.is_any(&["select", "insert", "update", "delete", "merge"])
            {
                c.verb = verb_of(w);
                first_word = Some(w);
            }
            if depth == 0 && copy_seen && (w.is("to") || w.is("from")) && c.verb == Verb::Other {
                c.verb = if w.is("to") {
                    Verb::CopyTo
                } else {
                    Verb::CopyFrom
                };
            }
        }
        // A dotted continuation of the table just read: schema.table.
        if last_table_end && tok == Tok::Dot {
            if let Some((_, next)) = lex.next() {
                let name = match next {
                    Tok::Word(n) => Some(n.lower()),
                    Tok::Quoted(n) => Some(n.to_ascii_lowercase()),
                    _ => None,
                };
                if let (Some(n), Some(t)) = (name, c.tables.last_mut()) {
                    t.push('.');
                    t.push_str(&n);
                }
            }
            continue;
        }
        last_table_end = false;
        match &tok {
            Tok::Word(w) if want_table => {
                if w.is("only") || w.is("lateral") {
                    continue;
                }
                want_table = false;
                if !w.not_alias {
                    c.tables.push(w.lower());
                    last_table_end = true;
                    after_table = in_from_list;
                }
            }
            Tok::Quoted(q) if want_table => {
                want_table = false;
                c.tables.push(q.to_ascii_lowercase());
                last_table_end = true;
                after_table = in_from_list;
            }
            Tok::Word(w) if copy_seen && depth == 0 && (w.is("from") || w.is("to")) => {
                // COPY's direction: a file or STDIN/STDOUT follows, not a table.
                want_table = false;
                after_table = false;
            }
            Tok::Word(w) if w.table_after => {
                // `DELETE FROM`, `INSERT INTO`, `SELECT ... FROM`, `x JOIN`, `COPY x`, `TABLE x`,
                // `MERGE ... USING`. Not `IS DISTINCT FROM`, `EXTRACT(x FROM y)` heuristically:
                // a name after them that is not a table is harmless (no categories match it).
                want_table = true;
                in_from_list = w.is("from");
                after_table = false;
            }
            Tok::Comma if after_table && in_from_list => {
                want_table = true;
                after_table = false;
            }
            Tok::Word(w) if after_table && !w.not_alias => {
                // An alias: stay in the FROM list.
            }
            Tok::Quoted(_) if after_table => {}
            Tok::Open => {
                depth += 1;
                want_table = false;
                after_table = false;
                in_from_list = false;
            }
            Tok::Close => {
                depth = depth.saturating_sub(1);
                want_table = false;
                after_table = false;
                in_from_list = false;
            }
            _ => {
                want_table = false;
                after_table = false;
                if !matches!(tok, Tok::Word(_)) {
                    in_from_list = false;
                }
            }
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    for s in &mut out {
        s.tables.sort();
        s.tables.dedup();
    }
    (out, true)
}

fn verb_of(w: Word) -> Verb {
    if w.is_any(&["select", "with", "table", "values", "fetch"]) {
        Verb::Read
    } else if w.is_any(&["insert", "update", "merge"]) {
        Verb::Update
    } else if w.is_any(&["delete", "truncate"]) {
        Verb::Delete
    } else {
        Verb::Other // COPY's direction comes later; DDL, SET, CALL, ...
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> (Verb, Vec<String>) {
        let s = scan(sql);
        assert_eq!(s.len(), 1, "{sql}: {s:?}");
        (s[0].verb, s[0].tables.clone())
    }

    fn v(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_verbs_and_tables() {
        assert_eq!(
            one("SELECT name FROM customers WHERE customer_id = 'C-1'"),
            (Verb::Read, v(&["customers"]))
        );
        assert_eq!(
            one("select * from public.Customers c, \"Orders\" o join x.items i on true where c.id = o.id"),
            (Verb::Read, v(&["orders", "public.customers", "x.items"]))
        );
        assert_eq!(
            one("COPY (SELECT * FROM customers) TO STDOUT"),
            (Verb::CopyTo, v(&["customers"]))
        );
        assert_eq!(
            one("copy customers (customer_id, name) from stdin"),
            (Verb::CopyFrom, v(&["customers"]))
        );
        assert_eq!(
            one("INSERT INTO customers VALUES ('a', 'from x', $1)"),
            (Verb::Update, v(&["customers"]))
        );
        assert_eq!(
            one("WITH gone AS (SELECT id FROM a) DELETE FROM customers WHERE id IN (SELECT id FROM gone)"),
            (Verb::Delete, v(&["a", "customers", "gone"]))
        );
        assert_eq!(
            one("UPDATE customers SET phone = $$ from nowhere $$ WHERE customer_id = $1"),
            (Verb::Update, v(&["customers"]))
        );
        assert_eq!(one("SELECT 1 -- from customers"), (Verb::Read, v(&[])));
        assert_eq!(one("SELECT /* from /* a */ b */ 1"), (Verb::Read, v(&[])));
        assert_eq!(one("SELECT E'it\\'s from x'"), (Verb::Read, v(&[])));
        assert_eq!(one("TABLE customers"), (Verb::Read, v(&["customers"])));
        assert_eq!(one("BEGIN"), (Verb::Other, v(&[])));
    }

    #[test]
    fn scanning_stops_at_the_statement_cap() {
        let (s, complete) = scan_at_most("SELECT 1; SELECT 2;; SELECT 3", 2);
        assert_eq!((s.len(), complete), (2, false));
        let (s, complete) = scan_at_most("SELECT 1; SELECT 2;;", 2);
        assert_eq!((s.len(), complete), (2, true));
    }

    #[test]
    fn splits_statements_outside_literals() {
        let sql = "BEGIN; SELECT ';' FROM a;; DELETE FROM b";
        let s = scan(sql);
        assert_eq!(s.len(), 3);
        assert_eq!(&sql[s[1].start..s[1].end], "SELECT ';' FROM a");
        assert_eq!(s[2].verb, Verb::Delete);
        assert!(scan("  ;  ").is_empty());
    }

    fn shaped(sql: &str) -> Option<(String, usize, usize)> {
        let mut key = Vec::new();
        let (start, end) = shape(sql, &mut key)?;
        Some((String::from_utf8(key).unwrap(), start, end))
    }

    #[test]
    fn a_shape_replaces_numbers_and_nothing_else() {
        let (key, start, end) =
            shaped(" SELECT abalance FROM pgbench_accounts WHERE aid = 12345; ").unwrap();
        assert_eq!(
            key,
            " SELECT abalance FROM pgbench_accounts WHERE aid = 0; "
        );
        assert_eq!((start, end), (1, 56));
        // Digits inside names, and parameters, stay as written.
        let (key, ..) = shaped("SELECT t1.c2 FROM t1 WHERE x = $12 AND y > 3.5e7").unwrap();
        assert_eq!(key, "SELECT t1.c2 FROM t1 WHERE x = $12 AND y > 0.0e7");
        assert_eq!(shaped("SELECT 1").unwrap().0, "SELECT 0");
    }

    #[test]
    fn texts_that_need_the_scan_have_no_shape() {
        for sql in [
            "SELECT 'x' FROM a",
            "SELECT \"x\" FROM a",
            "SELECT 1 -- FROM a",
            "SELECT /* x */ 1",
            "SELECT $$x$$",
            "SELECT $1$$",
            "SELECT $a",
            "SELECT $1x",
            "SELECT a$b FROM t",
            "SELECT 1; SELECT 2",
            "SELECT 1;;",
            "SELECT * FROM t. ;",
            "  ;  ",
            "",
        ] {
            assert_eq!(shaped(sql), None, "{sql}");
        }
        assert_eq!(shaped(&format!("SELECT {}", "1".repeat(SHAPE_MAX))), None);
    }

    #[test]
    fn texts_of_one_shape_scan_alike() {
        let texts = [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 7;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1234567;",
        ];
        let mut keys = Vec::new();
        for t in texts {
            let mut key = Vec::new();
            let (start, end) = shape(t, &mut key).unwrap();
            let s = scan(t);
            assert_eq!((s.len(), s[0].start, s[0].end), (1, start, end), "{t}");
            keys.push((key, s[0].verb, s[0].tables.clone()));
        }
        assert_eq!(keys[0], keys[1]);
    }

    proptest::proptest! {
        /// Whatever the text, equal shapes mean equal scans, and the
        /// range is the one statement the scan finds.
        #[test]
        fn equal_shapes_scan_alike(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "select", "FROM", " ", "\n", "t1", "x", "é", "1", "234", "$1", "$", ".",
                    ",", "(", ")", ";", "join", "update", "into", "e", "0", "-", "/", "*", "=",
                ]),
                0..20,
            ),
            digits in proptest::collection::vec(1u32..1_000_000, 20),
        ) {
            let a: String = parts.concat();
            // The same text with each number rewritten.
            let mut b = String::new();
            let mut d = digits.iter().cycle();
            let bytes = a.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let c = bytes[i];
                let starts_number = c.is_ascii_digit()
                    && (i == 0 || class(bytes[i - 1]) & WORD_PART == 0);
                if starts_number {
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    b.push_str(&d.next().unwrap().to_string());
                } else {
                    let ch = a[i..].chars().next().unwrap();
                    b.push(ch);
                    i += ch.len_utf8();
                }
            }
            let (mut ka, mut kb) = (Vec::new(), Vec::new());
            if let (Some(ra), Some(rb)) = (shape(&a, &mut ka), shape(&b, &mut kb)) {
                assert_eq!(ka, kb, "{a:?} / {b:?}");
                let (sa, sb) = (scan(&a), scan(&b));
                assert_eq!(sa.len(), 1, "{a:?}: {sa:?}");
                assert_eq!((sa[0].start, sa[0].end), ra);
                assert_eq!((sb[0].start, sb[0].end), rb);
                assert_eq!((sa[0].verb, &sa[0].tables), (sb[0].verb, &sb[0].tables));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_scans_without_panic(s in ".{0,80}") {
            for st in scan(&s) {
                assert!(st.start <= st.end && st.end <= s.len());
            }
        }
    }
}
