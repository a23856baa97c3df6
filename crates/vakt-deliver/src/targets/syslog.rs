//! `kind = "syslog"`: RFC 5424 or CEF lines (see [`crate::format`]) to
//! `address`, over UDP (one datagram per alert) or TCP (octet-counted
//! framing, RFC 6587, one connection kept open between alerts).

use super::{Kind, Settings, Target};
use crate::format::{cef, rfc5424};
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;
use vakt_event::Alert;

pub const KIND: Kind = Kind {
    name: "syslog",
    description: "RFC 5424 or CEF lines to `address` (udp:// or tcp://)",
    build,
};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Syslog {
    name: String,
    tcp: bool,
    /// `HOST:PORT`.
    address: String,
    cef: bool,
    hostname: String,
    conn: Option<TcpStream>,
}

fn build(s: &Settings) -> Result<Box<dyn Target>, String> {
    let address = s.address.as_deref().unwrap_or("");
    let (tcp, rest) = if let Some(r) = address.strip_prefix("tcp://") {
        (true, r)
    } else if let Some(r) = address.strip_prefix("udp://") {
        (false, r)
    } else {
        return Err(format!(
            "syslog target `{}` needs `address = \"udp://HOST:PORT\"` or `\"tcp://HOST:PORT\"`",
            s.name
        ));
    };
    if !rest.contains(':') {
        return Err(format!(
            "syslog target `{}`: address `{address}` lacks a port, e.g. udp://127.0.0.1:514",
            s.name
        ));
    }
    let cef = match s.format.as_deref() {
        None | Some("rfc5424") => false,
        Some("cef") => true,
        Some(f) => {
            return Err(format!(
                "syslog target `{}`: format `{f}` is neither rfc5424 nor cef",
                s.name
            ))
        }
    };
    Ok(Box::new(Syslog {
        name: s.name.clone(),
        tcp,
        address: rest.to_owned(),
        cef,
        hostname: std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        conn: None,
    }))
}

impl Target for Syslog {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!(
            "syslog {}://{} ({})",
            if self.tcp { "tcp" } else { "udp" },
            self.address,
            if self.cef { "cef" } else { "rfc5424" }
        )
    }

    fn send(&mut self, a: &Alert) -> Result<(), String> {
        let line = if self.cef {
            cef(a)
        } else {
            rfc5424(a, &self.hostname)
        };
        if self.tcp {
            return self.send_tcp(&line);
        }
        let address = &self.address;
        let sock = UdpSocket::bind(if address.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .map_err(|e| e.to_string())?;
        sock.send_to(line.as_bytes(), address.as_str())
            .map(|_| ())
            .map_err(|e| format!("udp {address}: {e}"))
    }
}

impl Syslog {
    fn send_tcp(&mut self, line: &str) -> Result<(), String> {
        let address = &self.address;
        let framed = format!("{} {line}", line.len());
        if self.conn.is_none() {
            let s = TcpStream::connect(address).map_err(|e| format!("tcp {address}: {e}"))?;
            let _ = s.set_write_timeout(Some(TIMEOUT));
            self.conn = Some(s);
        }
        let r = self
            .conn
            .as_mut()
            .expect("connected above")
            .write_all(framed.as_bytes());
        r.map_err(|e| {
            self.conn = None; // reconnect next time
            format!("tcp {address}: {e}")
        })
    }
}
