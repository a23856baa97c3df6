//! From inputs to one stream of events in event-time order.
//!
//! Each input is read line by line through its parser; a small reorder
//! buffer per input absorbs bounded disorder (events up to `lateness`
//! older than the newest seen are put back in order), and several inputs
//! are merged by event time. Rejected lines go to [`Rejects`].

use crate::lines::{Line, LineReader};
use crate::parsers::{self, Format, ParseError, Parser, ParserContext};
use crate::rejects::Rejects;
use crate::source::{self, FollowControl, Input};
use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::sync::{Arc, Mutex};
use vakt_event::{Event, Origin, Timestamp};

#[derive(Clone)]
pub struct StreamConfig {
    /// `None`: pick the format from each input's first lines.
    pub format: Option<&'static Format>,
    pub context: ParserContext,
    pub max_line: usize,
    /// Disorder tolerated, in milliseconds of event time.
    pub lateness: i64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            format: None,
            context: ParserContext::default(),
            max_line: crate::lines::DEFAULT_MAX_LINE,
            lateness: 5 * vakt_event::time::MINUTE,
        }
    }
}

/// Counts for one input, for the run summary.
#[derive(Clone, Debug, Default)]
pub struct InputStats {
    pub name: String,
    pub format: Option<&'static str>,
    pub lines: u64,
    pub events: u64,
    pub rejected: u64,
    pub bytes: u64,
}

/// Events of one input, in event-time order within the tolerated lateness.
pub struct EventStream {
    name: Arc<str>,
    reader: LineReader<Box<dyn BufRead + Send>>,
    parser: Option<Box<dyn Parser>>,
    config: StreamConfig,
    parsed: Vec<Event>,
    /// Sorted by event time; released once older than `newest - lateness`.
    buffer: VecDeque<Event>,
    newest: Timestamp,
    ended: bool,
    stats: InputStats,
}

impl EventStream {
    pub fn open(input: &Input, config: StreamConfig) -> io::Result<EventStream> {
        Ok(Self::from_reader(
            &input.name(),
            source::open(input)?,
            config,
        ))
    }

    pub fn follow(
        path: &std::path::Path,
        config: StreamConfig,
        control: FollowControl,
    ) -> io::Result<EventStream> {
        Ok(Self::from_reader(
            &path.display().to_string(),
            source::follow(path, control)?,
            config,
        ))
    }

    pub fn from_reader(
        name: &str,
        reader: Box<dyn BufRead + Send>,
        config: StreamConfig,
    ) -> EventStream {
        let parser = config.format.map(|f| (f.build)(&config.context));
        EventStream {
            name: name.into(),
            reader: LineReader::new(reader, config.max_line),
            stats: InputStats {
                name: name.to_owned(),
                format: config.format.map(|f| f.name),
                ..Default::default()
            },
            parser,
            config,
            parsed: Vec::new(),
            buffer: VecDeque::new(),
            newest: Timestamp(i64::MIN),
            ended: false,
        }
    }

    pub fn stats(&self) -> &InputStats {
        &self.stats
    }

    /// The next event, `None` when the input is exhausted.
    pub fn next_event(&mut self, rejects: &Mutex<Rejects>) -> io::Result<Option<Event>> {
        loop {
            if let Some(front) = self.buffer.front() {
                if self.ended
                    || front.timestamp().0 <= self.newest.0.saturating_sub(self.config.lateness)
                {
                    return Ok(self.buffer.pop_front());
                }
            } else if self.ended {
                return Ok(None);
            }
            self.read_more(rejects)?;
        }
    }

    fn read_more(&mut self, rejects: &Mutex<Rejects>) -> io::Result<()> {
        let line_no = self.reader.line_no + 1;
        let result = match self.reader.next_line()? {
            None => {
                self.ended = true;
                self.stats.bytes = self.reader.offset;
                match &mut self.parser {
                    Some(p) => p.finish(&mut self.parsed).map_err(|e| (e, String::new())),
                    None => return Ok(()),
                }
            }
            Some(Line::TooLong { len, head }) => {
                self.stats.lines += 1;
                Err((
                    ParseError::new(format!(
                        "line of {len} bytes is longer than the {} byte limit",
                        self.config.max_line
                    )),
                    head,
                ))
            }
            Some(Line::Text(text)) => {
                self.stats.lines += 1;
                if self.parser.is_none() {
                    if text.trim().is_empty() {
                        return Ok(());
                    }
                    match parsers::sniff(text) {
                        Some(f) => {
                            self.parser = Some((f.build)(&self.config.context));
                            self.stats.format = Some(f.name);
                        }
                        None => {
                            let e = ParseError::new(format!(
                                "cannot tell the input's format from this line; pass --format (one of {})",
                                parsers::names().join(", ")
                            ));
                            self.stats.rejected += 1;
                            if let Ok(mut r) = rejects.lock() {
                                r.reject(&self.name, line_no, &e.0, text);
                            }
                            return Ok(());
                        }
                    }
                }
                let origin = Origin::new(self.name.clone(), line_no);
                let parser = self.parser.as_mut().expect("parser chosen above");
                parser
                    .parse_line(text, &origin, &mut self.parsed)
                    .map_err(|e| (e, text.to_owned()))
            }
        };
        if let Err((e, raw)) = result {
            self.record_reject(rejects, line_no, &e, &raw);
        }
        for ev in self.parsed.drain(..) {
            self.stats.events += 1;
            let ts = ev.timestamp();
            if ts >= self.newest {
                self.newest = ts;
                self.buffer.push_back(ev);
            } else {
                // Out of order: insert in place (rare, and the buffer is short).
                let at = self.buffer.partition_point(|e| e.timestamp() <= ts);
                self.buffer.insert(at, ev);
            }
        }
        Ok(())
    }

    fn record_reject(&mut self, rejects: &Mutex<Rejects>, line: u64, e: &ParseError, raw: &str) {
        self.stats.rejected += 1;
        if let Ok(mut r) = rejects.lock() {
            r.reject(&self.name, line, &e.0, raw);
        }
    }
}

/// Several inputs merged by event time.
pub struct Merge {
    streams: Vec<EventStream>,
    heads: Vec<Option<Event>>,
    primed: bool,
}

impl Merge {
    pub fn new(streams: Vec<EventStream>) -> Merge {
        let heads = streams.iter().map(|_| None).collect();
        Merge {
            streams,
            heads,
            primed: false,
        }
    }

    pub fn next_event(&mut self, rejects: &Mutex<Rejects>) -> io::Result<Option<Event>> {
        if self.streams.len() == 1 {
            return self.streams[0].next_event(rejects);
        }
        if !self.primed {
            for (s, h) in self.streams.iter_mut().zip(&mut self.heads) {
                *h = s.next_event(rejects)?;
            }
            self.primed = true;
        }
        let Some(i) = (0..self.heads.len())
            .filter(|&i| self.heads[i].is_some())
            .min_by_key(|&i| self.heads[i].as_ref().map(|e| e.timestamp()))
        else {
            return Ok(None);
        };
        let next = self.streams[i].next_event(rejects)?;
        Ok(std::mem::replace(&mut self.heads[i], next))
    }

    pub fn stats(&self) -> Vec<InputStats> {
        self.streams.iter().map(|s| s.stats().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: &str, user: &str) -> String {
        format!(r#"{{"@timestamp":"{ts}","user.name":"{user}","event.action":"lookup"}}"#)
    }

    fn rejects() -> Mutex<Rejects> {
        Mutex::new(Rejects::new(None, Box::new(|_| {})).unwrap())
    }

    fn stream(name: &str, text: String) -> EventStream {
        EventStream::from_reader(
            name,
            Box::new(io::Cursor::new(text.into_bytes())),
            StreamConfig::default(),
        )
    }

    #[test]
    fn bounded_disorder_is_put_back_in_order_and_bad_lines_are_counted() {
        let text = [
            line("2026-11-02T08:00:00Z", "a"),
            line("2026-11-02T08:02:00Z", "b"),
            "{not json".to_string(),
            line("2026-11-02T08:01:00Z", "c"),
            line("2026-11-02T08:10:00Z", "d"),
        ]
        .join("\n");
        let r = rejects();
        let mut s = stream("in", text);
        let mut users = Vec::new();
        while let Some(Event::Access(a)) = s.next_event(&r).unwrap() {
            users.push(a.user);
        }
        assert_eq!(users, ["a", "c", "b", "d"]);
        assert_eq!(r.lock().unwrap().count(), 1);
        assert_eq!(s.stats().rejected, 1);
        assert_eq!(s.stats().events, 4);
        assert_eq!(s.stats().format, Some("jsonl"));
    }

    #[test]
    fn inputs_merge_by_event_time() {
        let a = stream(
            "a",
            [
                line("2026-11-02T08:00:00Z", "a1"),
                line("2026-11-02T09:00:00Z", "a2"),
            ]
            .join("\n"),
        );
        let b = stream(
            "b",
            [
                line("2026-11-02T08:30:00Z", "b1"),
                line("2026-11-02T10:00:00Z", "b2"),
            ]
            .join("\n"),
        );
        let r = rejects();
        let mut m = Merge::new(vec![a, b]);
        let mut users = Vec::new();
        while let Some(Event::Access(ev)) = m.next_event(&r).unwrap() {
            users.push(ev.user);
        }
        assert_eq!(users, ["a1", "b1", "a2", "b2"]);
    }

    #[test]
    fn unknown_format_lines_are_rejected_until_one_is_recognised() {
        let text = format!("garbage here\n{}\n", line("2026-11-02T08:00:00Z", "a"));
        let r = rejects();
        let mut s = stream("in", text);
        assert!(s.next_event(&r).unwrap().is_some());
        assert_eq!(r.lock().unwrap().count(), 1);
    }
}
