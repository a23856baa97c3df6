//! Customer ids from SQL statements, with statement shapes parsed once.
//!
//! sqlparser reads a statement in some tens of microseconds, and a busy
//! database logs the same few statements with different literals all day
//! (`... WHERE aid = 42`, `... WHERE aid = 43`). So each statement is first
//! cut by a small hand-written tokenizer (it runs on every line; sqlparser
//! is the slow part) into a *shape*, normalised as `pg_stat_statements`
//! does: string and number literals become placeholders, an `IN (...)` list
//! of literals is one placeholder whatever its length, whitespace runs are
//! one space and unquoted words are lower case. sqlparser reads a shape once
//! (a probe: the statement with each literal replaced by a marker naming
//! it) and the cache keeps which literal slots and `$n` parameters feed a
//! key column. Later statements of that shape are tokenized and their
//! literals picked at those slots.
//!
//! Whatever the tokenizer cannot cut with certainty (comments, dollar
//! quoting, `E''` and other prefixed strings, backslashes in strings,
//! numbers with exponents or a leading dot, control characters) and shapes
//! whose probe reads back anything but whole markers go to sqlparser for
//! every statement, so the ids never differ from the uncached path.
//!
//! Bounds: at most [`SHAPES`] shapes (least recently used evicted), each
//! key at most [`MAX_SHAPE_KEY`] bytes (longer statements are read by
//! sqlparser directly): a flood of distinct shapes costs one sqlparser read
//! each, as without the cache, and a few MiB at most.

use lru::LruCache;
use sqlparser::ast::{visit_expressions, BinaryOperator, Expr, Value};
use sqlparser::dialect::PostgreSqlDialect;
use std::borrow::Cow;
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;

/// Shapes kept per parser.
pub const SHAPES: usize = 2048;
/// Longest shape key cached, in bytes.
pub const MAX_SHAPE_KEY: usize = 2048;

// Bytes that stand for literals in a shape key; the tokenizer gives up on
// control characters elsewhere, so no statement text can spell them.
const STRING: u8 = 0x01;
const NUMBER: u8 = 0x02;
const LIST: u8 = 0x03;

/// A value sqlparser found compared with a key column.
#[derive(Debug, PartialEq, Eq)]
enum KeyValue {
    /// A string or number literal, as written (strings unescaped).
    Literal { value: String, string: bool },
    /// `$n`, 1-based.
    Param(usize),
}

/// Reads the customer ids of statements against `key_columns`.
pub struct KeyReader {
    key_columns: HashSet<String>,
    cache: Option<LruCache<String, Shape>>,
    tokens: Tokens,
}

/// What the probe of one shape found.
enum Shape {
    /// Slots (indexes into [`Tokens::slots`]) and parameters (1-based)
    /// compared with a key column.
    Keys {
        slots: Box<[u32]>,
        params: Box<[usize]>,
    },
    /// The probe read something other than whole markers: sqlparser reads
    /// every statement of this shape.
    Uncertain,
}

impl KeyReader {
    /// `cached: false` reads every statement with sqlparser (the reference
    /// the cache is measured and tested against).
    pub fn new(key_columns: HashSet<String>, cached: bool) -> KeyReader {
        KeyReader {
            key_columns,
            cache: cached.then(|| LruCache::new(NonZeroUsize::new(SHAPES).expect("non-zero"))),
            tokens: Tokens::default(),
        }
    }

    /// Literal values (and logged parameters) compared with a key column
    /// in `=` or `IN`, sorted and deduplicated.
    pub fn customer_ids(&mut self, statement: &str, parameters: &[String]) -> Vec<String> {
        if self.key_columns.is_empty() {
            return Vec::new();
        }
        let Some(cache) = self.cache.as_mut() else {
            return uncached(statement, parameters, &self.key_columns);
        };
        let tokens = &mut self.tokens;
        if !tokens.read(statement) || tokens.key.len() > MAX_SHAPE_KEY {
            return uncached(statement, parameters, &self.key_columns);
        }
        let shape = match cache.get(tokens.key.as_str()) {
            Some(shape) => shape,
            None => {
                let shape = probe(statement, tokens, &self.key_columns);
                cache.get_or_insert(tokens.key.clone(), || shape)
            }
        };
        let Shape::Keys { slots, params } = shape else {
            return uncached(statement, parameters, &self.key_columns);
        };
        let mut ids = Vec::new();
        for &s in slots.iter() {
            let (from, to) = tokens.slots[s as usize];
            ids.extend(
                (from..to).map(|l| tokens.literals[l as usize].value(statement).into_owned()),
            );
        }
        ids.extend(params.iter().filter_map(|&n| param(parameters, n)));
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The value of `$n`, if logged.
fn param(parameters: &[String], n: usize) -> Option<String> {
    parameters.get(n.wrapping_sub(1)).cloned()
}

/// Every statement read by sqlparser.
fn uncached(statement: &str, parameters: &[String], key_columns: &HashSet<String>) -> Vec<String> {
    let mut ids: Vec<String> = key_values(statement, key_columns)
        .into_iter()
        .filter_map(|v| match v {
            KeyValue::Literal { value, .. } => Some(value),
            KeyValue::Param(n) => param(parameters, n),
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Values compared with a key column in `=` or a non-negated `IN`, as
/// sqlparser reads `statement`; nothing when it cannot read it.
fn key_values(statement: &str, key_columns: &HashSet<String>) -> Vec<KeyValue> {
    let Ok(statements) = sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, statement)
    else {
        return Vec::new();
    };
    let mut values = Vec::new();
    let is_key = |e: &Expr| match e {
        Expr::Identifier(i) => key_columns.contains(&i.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|i| {
            let col = i.value.to_ascii_lowercase();
            key_columns.contains(&col)
                || key_columns.contains(
                    &parts
                        .iter()
                        .map(|p| p.value.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join("."),
                )
        }),
        _ => false,
    };
    let literal = |e: &Expr| -> Option<KeyValue> {
        let Expr::Value(v) = e else { return None };
        match &v.value {
            Value::SingleQuotedString(s) => Some(KeyValue::Literal {
                value: s.clone(),
                string: true,
            }),
            Value::Number(s, _) => Some(KeyValue::Literal {
                value: s.clone(),
                string: false,
            }),
            Value::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .map(KeyValue::Param),
            _ => None,
        }
    };
    let _ = visit_expressions(&statements, |e: &Expr| {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                if is_key(left) {
                    values.extend(literal(right));
                } else if is_key(right) {
                    values.extend(literal(left));
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } if is_key(expr) => values.extend(list.iter().filter_map(literal)),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    values
}

/// Reads the shape of `statement` (cut into `tokens`) with sqlparser: each
/// literal is replaced by a marker holding its index, so what sqlparser
/// returns names the slots that feed a key column.
fn probe(statement: &str, tokens: &Tokens, key_columns: &HashSet<String>) -> Shape {
    let mut text = String::with_capacity(statement.len() + 8);
    let mut at = 0;
    for (i, l) in tokens.literals.iter().enumerate() {
        let (from, to) = if l.string {
            (l.from - 1, l.to + 1)
        } else {
            (l.from, l.to)
        };
        text.push_str(&statement[at..from]);
        if l.string {
            text.push_str(&format!("'{i}'"));
        } else {
            text.push_str(&i.to_string());
        }
        at = to;
    }
    text.push_str(&statement[at..]);
    let mut hit = vec![false; tokens.literals.len()];
    let mut params = Vec::new();
    for v in key_values(&text, key_columns) {
        match v {
            KeyValue::Literal { value, string } => {
                let Some(i) = value.parse::<usize>().ok().filter(|&i| {
                    i < tokens.literals.len()
                        && tokens.literals[i].string == string
                        && value == i.to_string()
                }) else {
                    return Shape::Uncertain;
                };
                hit[i] = true;
            }
            KeyValue::Param(n) => params.push(n),
        }
    }
    let mut slots = Vec::new();
    for (s, &(from, to)) in tokens.slots.iter().enumerate() {
        let n = (from..to).filter(|&l| hit[l as usize]).count();
        if n == (to - from) as usize {
            slots.push(s as u32);
        } else if n > 0 {
            // Part of a collapsed list: its length is not in the shape.
            return Shape::Uncertain;
        }
    }
    params.sort_unstable();
    params.dedup();
    Shape::Keys {
        slots: slots.into(),
        params: params.into(),
    }
}

/// One literal: its bytes in the statement (inside the quotes for strings).
#[derive(Clone, Copy, Debug)]
struct Literal {
    from: usize,
    to: usize,
    string: bool,
    /// A string holding `''`, unescaped on use.
    escaped: bool,
}

impl Literal {
    fn value<'s>(&self, statement: &'s str) -> Cow<'s, str> {
        let raw = &statement[self.from..self.to];
        if self.escaped {
            Cow::Owned(raw.replace("''", "'"))
        } else {
            Cow::Borrowed(raw)
        }
    }
}

/// A statement cut by [`Tokens::read`]; buffers reused across statements.
#[derive(Default)]
struct Tokens {
    /// The shape: the statement with literals as marker bytes.
    key: String,
    literals: Vec<Literal>,
    /// Literal ranges `[from, to)`: one literal, or a whole `IN (...)` list.
    slots: Vec<(u32, u32)>,
}

/// Where the tokenizer is in a possible `IN (literal, ...)` list.
#[derive(Clone, Copy, PartialEq)]
enum List {
    None,
    /// The word `in` was the last token.
    AfterIn,
    /// After `in (` or a comma: a literal must follow.
    Open {
        key: usize,
        slot: usize,
    },
    /// After a literal: `,` or `)` must follow.
    Literal {
        key: usize,
        slot: usize,
    },
}

impl Tokens {
    /// Cuts `s` into its shape and literals; `false` when `s` holds
    /// anything the tokenizer does not read with certainty.
    fn read(&mut self, s: &str) -> bool {
        self.key.clear();
        self.literals.clear();
        self.slots.clear();
        let b = s.as_bytes();
        let mut i = 0;
        let mut space = false;
        let mut list = List::None;
        let mut last_string = false;
        while i < b.len() {
            let c = b[i];
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                space = true;
                i += 1;
                continue;
            }
            if space && !self.key.is_empty() {
                self.key.push(' ');
            }
            space = false;
            let was_string = std::mem::replace(&mut last_string, false);
            let mut token_list = List::None;
            match c {
                b'\'' => {
                    // Adjacent strings are concatenated by PostgreSQL.
                    if was_string || (i > 0 && is_word_byte(b[i - 1])) {
                        return false;
                    }
                    let from = i + 1;
                    let mut j = from;
                    let mut escaped = false;
                    loop {
                        match b.get(j) {
                            None | Some(b'\\') => return false,
                            Some(b'\'') if b.get(j + 1) == Some(&b'\'') => {
                                escaped = true;
                                j += 2;
                            }
                            Some(b'\'') => break,
                            Some(_) => j += 1,
                        }
                    }
                    self.literal(from, j, true, escaped, &mut list);
                    token_list = list;
                    last_string = true;
                    i = j + 1;
                }
                b'"' => {
                    let mut j = i + 1;
                    loop {
                        match b.get(j) {
                            None => return false,
                            Some(b'"') if b.get(j + 1) == Some(&b'"') => j += 2,
                            Some(b'"') => break,
                            Some(&x) if x < 0x20 => return false,
                            Some(_) => j += 1,
                        }
                    }
                    self.key.push_str(&s[i..=j]);
                    i = j + 1;
                }
                b'$' => {
                    let mut j = i + 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    if j == i + 1 || b.get(j).is_some_and(|&x| is_word_byte(x) || x == b'.') {
                        return false; // dollar quoting, or something unusual
                    }
                    self.key.push_str(&s[i..j]);
                    i = j;
                }
                b'0'..=b'9' => {
                    let mut j = i;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'.') {
                        j += 1;
                        let frac = j;
                        while j < b.len() && b[j].is_ascii_digit() {
                            j += 1;
                        }
                        if j == frac {
                            return false;
                        }
                    }
                    if b.get(j).is_some_and(|&x| is_word_byte(x) || x == b'.') {
                        return false; // 1e5, 0x1f, 1_000, 1.2.3
                    }
                    self.literal(i, j, false, false, &mut list);
                    token_list = list;
                    i = j;
                }
                b'-' if b.get(i + 1) == Some(&b'-') => return false,
                b'/' if b.get(i + 1) == Some(&b'*') => return false,
                b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return false,
                b'&' if matches!(b.get(i + 1), Some(b'\'' | b'"')) => return false,
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    let mut j = i;
                    while j < b.len() && is_word_byte(b[j]) {
                        j += 1;
                    }
                    if matches!(b.get(j), Some(b'\'' | b'"')) {
                        return false; // E'', B'', X'', N'', U&'' and friends
                    }
                    let word = &s[i..j];
                    let at = self.key.len();
                    self.key.push_str(word);
                    self.key[at..].make_ascii_lowercase();
                    if word.eq_ignore_ascii_case("in") {
                        token_list = List::AfterIn;
                    }
                    i = j;
                }
                c if c < 0x20 || c == 0x7f => return false,
                _ => {
                    match (c, list) {
                        (b'(', List::AfterIn) => {
                            token_list = List::Open {
                                key: self.key.len() + 1,
                                slot: self.slots.len(),
                            }
                        }
                        (b',', List::Literal { key, slot }) => {
                            token_list = List::Open { key, slot }
                        }
                        (b')', List::Literal { key, slot }) => {
                            // Collapse the list to one slot and one marker.
                            let first = self.slots[slot].0;
                            let last = self.literals.len() as u32;
                            self.slots.truncate(slot);
                            self.slots.push((first, last));
                            self.key.truncate(key);
                            self.key.push(LIST as char);
                        }
                        _ => {}
                    }
                    self.key.push(c as char);
                    i += 1;
                }
            }
            list = token_list;
        }
        true
    }

    /// Records a literal; inside a list being read, moves it on.
    fn literal(&mut self, from: usize, to: usize, string: bool, escaped: bool, list: &mut List) {
        let n = self.literals.len() as u32;
        self.literals.push(Literal {
            from,
            to,
            string,
            escaped,
        });
        self.slots.push((n, n + 1));
        self.key.push(if string { STRING } else { NUMBER } as char);
        *list = match *list {
            List::Open { key, slot } => List::Literal { key, slot },
            _ => List::None,
        };
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(s: &str) -> Option<String> {
        let mut t = Tokens::default();
        t.read(s).then(|| {
            t.key
                .replace(STRING as char, "'?'")
                .replace(NUMBER as char, "?")
                .replace(LIST as char, "...")
        })
    }

    #[test]
    fn literals_case_and_whitespace_do_not_change_the_shape() {
        let a = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 1234;").unwrap();
        assert_eq!(a, "select abalance from pgbench_accounts where aid = ?;");
        assert_eq!(
            shape("select  abalance\n from pgbench_accounts where aid = 99;"),
            Some(a)
        );
        assert_eq!(
            shape("select * from t where id in ('a', 'b''c', 'd') and x = $1").unwrap(),
            "select * from t where id in (...) and x = $1"
        );
        assert_eq!(
            shape("select * from t where id in ('a')"),
            shape("select * from t where id in ('a','b','c','d','e')")
        );
    }

    #[test]
    fn what_the_tokenizer_cannot_read_surely_is_left_to_sqlparser() {
        for s in [
            "select 1 -- comment",
            "select /* c */ 1",
            "select $$x$$",
            "select E'a\\n'",
            "select 'a\\'",
            "select 1e5",
            "select .5",
            "select 'a' 'b'",
            "select U&'d\\0061t'",
            "select 'unclosed",
            "select \"unclosed",
        ] {
            assert_eq!(shape(s), None, "{s}");
        }
    }

    fn reader(cached: bool) -> KeyReader {
        KeyReader::new(
            ["id", "customer_id", "t.aid"].map(String::from).into(),
            cached,
        )
    }

    #[test]
    fn cached_ids_are_the_ids_sqlparser_reads() {
        let params = ["P1".to_string(), "P2".to_string()];
        let statements = [
            "select * from t where id = 5",
            "select * from t where id = 6",
            "select * from t where ID = 'C-1' or customer_id = 'O''Brien'",
            "select * from t where id in (1, 2, 3)",
            "select * from t where id in (4)",
            "select * from t where id not in (4, 5)",
            "select * from t where x in (4, 5) and id = 7",
            "select * from t where id in (1, -2, 3)",
            "select * from t where customer_id = $2 and id = $1",
            "select * from t where customer_id = $3",
            "update t set x = 1 where 9 = id",
            "select * from t where t.aid = 3 and u.aid = 4",
            "select * from t where id = '5'::int",
            "select * from t where id = 5 + 1",
            "select * from t where id = 1.50",
            "select * from t where (id) = 8",
            "insert into t (id, name) values (11, 'x')",
            "select * from t where id = 5; select * from t where customer_id = 6",
            "select * from t where id in (select id from u where id = 12)",
            "select * from t wher id = 5",
        ];
        let (mut cached, mut plain) = (reader(true), reader(false));
        for round in 0..2 {
            for s in statements {
                assert_eq!(
                    cached.customer_ids(s, &params),
                    plain.customer_ids(s, &params),
                    "round {round}: {s}"
                );
            }
        }
        assert_eq!(
            cached.customer_ids(
                "select * from t where ID = 'C-1' or customer_id = 'O''Brien'",
                &[]
            ),
            ["C-1", "O'Brien"]
        );
        assert_eq!(
            cached.customer_ids("select * from t where id in (9,8,9)", &[]),
            ["8", "9"]
        );
    }

    #[test]
    fn a_flood_of_distinct_shapes_stays_within_the_cache_bound() {
        let mut r = reader(true);
        for i in 0..SHAPES + 500 {
            let s = format!("select c{i} from t where id = {i}");
            assert_eq!(r.customer_ids(&s, &[]), [i.to_string()]);
        }
        assert_eq!(r.cache.as_ref().map(LruCache::len), Some(SHAPES));
        let long = format!(
            "select {}x from t where id = 1",
            "x, ".repeat(MAX_SHAPE_KEY)
        );
        assert_eq!(r.customer_ids(&long, &[]), ["1"]);
        assert_eq!(r.cache.as_ref().map(LruCache::len), Some(SHAPES));
    }

    /// A condition: a column, how it is compared, literals and spacing.
    fn condition() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let column = prop::sample::select(vec![
            "id",
            "ID",
            "customer_id",
            "t.aid",
            "u.aid",
            "x",
            "\"id\"",
        ]);
        let literal = prop::sample::select(vec![
            "1",
            "42",
            "007",
            "1.50",
            "'C-1'",
            "'O''Brien'",
            "'é ö'",
            "''",
            "$1",
            "$2",
            "$3",
            "-5",
            "'a'::text",
            "E'x'",
            "1e3",
            "$$d$$",
            "'a\\b'",
            "(5)",
            "NULL",
        ]);
        let op = prop::sample::select(vec!["=", " = ", "in", " IN ", "not in", "<>", "=\n"]);
        let lits = prop::collection::vec(literal, 1..5);
        let reversed = any::<bool>();
        (column, op, lits, reversed).prop_map(|(c, op, lits, reversed)| {
            if op.trim().eq_ignore_ascii_case("in") || op == "not in" {
                format!("{c} {op} ({})", lits.join(", "))
            } else if reversed {
                format!("{}{op}{c}", lits[0])
            } else {
                format!("{c}{op}{}", lits[0])
            }
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3_000, ..Default::default() })]

        /// Statements of few shapes with many literals: the cache is hit,
        /// and what it gives is what sqlparser reads.
        #[test]
        fn the_cache_gives_what_sqlparser_reads_for_generated_statements(
            statements in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "select * from t where ",
                        "SELECT a, b FROM t  WHERE ",
                        "delete from t where ",
                        "update t set y = 'v' where ",
                        "select * from t where z in (select id from u where ",
                    ]),
                    proptest::collection::vec(condition(), 1..4),
                    proptest::sample::select(vec![" and ", " OR ", "\n AND "]),
                ),
                1..12,
            ),
        ) {
            let params = ["P1".to_string(), "P2".to_string()];
            let (mut cached, mut plain) = (reader(true), reader(false));
            for (head, conds, join) in statements {
                let mut s = format!("{head}{}", conds.join(join));
                if head.ends_with("where ") && head.contains('(') {
                    s.push(')');
                }
                proptest::prop_assert_eq!(
                    cached.customer_ids(&s, &params),
                    plain.customer_ids(&s, &params),
                    "{}", s
                );
            }
        }
    }
}
