//! The PostgreSQL proxy against a real PostgreSQL: a throwaway cluster
//! (`vakt_pgtemp`) started by these tests on 127.0.0.1 and a free port,
//! stopped when the last test using it ends, even on a panic. The server
//! binaries are required: without them the tests fail and say what to
//! install.

use futures_util::{SinkExt, TryStreamExt};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use vakt_event::{Directory, Timestamp};
use vakt_ledger::decisions::{Action, Decision, Scope};
use vakt_ledger::{DataDir, Ledger};
use vakt_pipeline::PipelineConfig;
use vakt_proxy::pg::{serve_pg, PgProxyConfig};
use vakt_proxy::{EventSink, FailMode, Guard, GuardConfig, SinkConfig};

// ---------------------------------------------------------------- the cluster

/// The shared throwaway cluster, with this file's roles and tables.
struct Cluster {
    pg: vakt_pgtemp::TempCluster,
    port: u16,
}

const SETUP: &str = "
SET password_encryption = 'scram-sha-256';
CREATE ROLE anna LOGIN PASSWORD 'anna-pw';
CREATE ROLE erik LOGIN PASSWORD 'erik-pw';
CREATE ROLE exporter LOGIN PASSWORD 'exporter-pw';
CREATE ROLE trusty LOGIN;
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5-pw';
CREATE TABLE customers(customer_id text PRIMARY KEY, name text, phone text);
INSERT INTO customers VALUES
  ('C-1', 'Anna Berg', '+46700000101'),
  ('C-2', 'Erik Lund', '+46700000102'),
  ('C-3', 'Sara Holm', '+46700000103'),
  ('C-4', 'Karl Ek', '+46700000104'),
  ('C-5', 'Eva Sjö', '+46700000105'),
  ('C-900', 'Canary Person', '+46701740000');
CREATE TABLE customers_staging(customer_id text PRIMARY KEY, name text, phone text);
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, customers_staging TO anna, erik, exporter, trusty, md5user;
";

const HBA: &str = "
local all all trust
host all md5user 127.0.0.1/32 md5
host all trusty 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
";

impl Cluster {
    fn start() -> Cluster {
        let pg = vakt_pgtemp::TempCluster::start(&vakt_pgtemp::Options {
            hba: Some(HBA.into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}; install it as ./scripts/test does"));
        pg.psql(SETUP).unwrap();
        Cluster {
            port: pg.port(),
            pg,
        }
    }

    /// `psql` over TCP to `port` (the server's or the proxy's).
    fn psql(
        &self,
        port: u16,
        user: &str,
        password: Option<&str>,
        cmd: &str,
    ) -> (bool, String, String) {
        let mut c = Command::new(self.pg.bin().join("psql"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
        ])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", cmd])
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
        if let Some(p) = password {
            c.env("PGPASSWORD", p);
        }
        let out = c.output().expect("psql runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// One cluster for the tests running at the same time; stopped when the
/// last of them lets go.
fn cluster() -> Arc<Cluster> {
    static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = shared.upgrade() {
        return c;
    }
    let c = Arc::new(Cluster::start());
    *shared = Arc::downgrade(&c);
    c
}

// ------------------------------------------------------------------ the proxy

const DIRECTORY: &str = r#"
[postgres]
key_columns = ["customer_id"]

[[postgres.table]]
name = "customers"
categories = ["name", "phone"]

[[policy]]
rule = "canary"
min_severity = "high"
action = "block"
ttl = "1h"
"#;

struct Proxy {
    addr: SocketAddr,
    data: DataDir,
    _tmp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<vakt_proxy::Result<()>>>,
    sink: Option<Arc<EventSink>>,
}

impl Proxy {
    async fn start(
        pg: &Cluster,
        directory: &str,
        tune: impl FnOnce(&mut PgProxyConfig, &mut GuardConfig),
    ) -> Proxy {
        Self::start_with(pg, directory, FailMode::Open, 4096, tune).await
    }

    async fn start_with(
        pg: &Cluster,
        directory: &str,
        fail_mode: FailMode,
        queue: usize,
        tune: impl FnOnce(&mut PgProxyConfig, &mut GuardConfig),
    ) -> Proxy {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let directory = Arc::new(Directory::from_toml(directory, "test.toml").unwrap());
        let sink = EventSink::start(
            &data,
            PipelineConfig {
                directory: directory.clone(),
                ..Default::default()
            },
            Vec::new(),
            SinkConfig {
                queue,
                fail_mode,
                source: "pg-proxy".into(),
            },
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config =
            PgProxyConfig::new(addr, format!("127.0.0.1:{}", pg.port)).with_directory(&directory);
        config.shutdown_grace = Duration::from_secs(2);
        let mut gc = GuardConfig {
            refresh: Duration::from_millis(200),
            contact: "security@example.net".into(),
            ..Default::default()
        };
        tune(&mut config, &mut gc);
        let guard = Guard::start(data.clone(), &directory, gc).unwrap();
        let sink = Arc::new(sink);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_pg(
            listener,
            config,
            guard,
            sink.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Proxy {
            addr,
            data,
            _tmp: tmp,
            stop: Some(stop),
            task: Some(task),
            sink: Some(sink),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn block(&self, account: &str) {
        self.decide(account, Action::Block);
    }

    /// Puts a decision on `account` for an hour (the guard reads it within its refresh).
    fn decide(&self, account: &str, action: Action) {
        let mut l = Ledger::open(&self.data).unwrap();
        let t = vakt_event::Timestamp::now();
        let d = Decision::new(
            format!("test-{action:?}-{account}").to_lowercase(),
            Scope::Account,
            account,
            action,
            "test by hand".into(),
            Timestamp(t.0 - 1000),
            3_601_000,
        );
        l.put_decision(&d.unwrap()).unwrap();
        l.close().unwrap();
    }

    /// Stops accepting, waits for the connections, drains the sink into the ledger.
    async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("the proxy stops within 10 s")
                .unwrap()
                .unwrap();
        }
        if let Some(sink) = self.sink.take() {
            let sink = Arc::try_unwrap(sink)
                .ok()
                .expect("no connection holds the sink after serve_pg returns");
            tokio::task::spawn_blocking(move || sink.shutdown().unwrap())
                .await
                .unwrap();
        }
    }

    /// (action, records) of the account's ledger entries, oldest first.
    fn entries(&self, account: &str) -> Vec<(String, i64)> {
        let l = Ledger::open_read(&self.data).unwrap();
        l.accesses(account)
            .unwrap()
            .into_iter()
            .map(|a| (a.action, a.records))
            .collect()
    }

    fn customers(&self, account: &str) -> Vec<String> {
        let l = Ledger::open_read(&self.data).unwrap();
        let s = l
            .scope_account(account, Timestamp(0), Timestamp(i64::MAX), None)
            .unwrap();
        s.customers.into_iter().map(|c| c.customer).collect()
    }
}

async fn connect(port: u16, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} password={password} dbname=postgres connect_timeout=10"),
        NoTls,
    )
    .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn simple_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

fn rows(rs: &[tokio_postgres::Row]) -> Vec<Vec<Option<String>>> {
    rs.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

fn refused(r: Result<Client, tokio_postgres::Error>) -> tokio_postgres::Error {
    match r {
        Ok(_) => panic!("the connection was not refused"),
        Err(e) => e,
    }
}

async fn copy_out(c: &Client) -> Vec<u8> {
    let s = c.copy_out("COPY customers TO STDOUT").await.unwrap();
    let chunks: Vec<bytes::Bytes> = s.try_collect().await.unwrap();
    chunks.concat()
}

fn code(e: &tokio_postgres::Error) -> Option<SqlState> {
    e.code().cloned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------- a raw client

/// A client speaking the wire protocol by hand, for what drivers never send:
/// batches left open, messages before login, impossible lengths.
struct Raw {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
enum Got {
    Msg(u8, Vec<u8>),
    Closed,
    Silent,
}

fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstrs(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

fn m_parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstrs(&[name, sql]);
    b.extend_from_slice(&0i16.to_be_bytes());
    msg(b'P', &b)
}

fn m_bind(portal: &str, statement: &str) -> Vec<u8> {
    let mut b = cstrs(&[portal, statement]);
    for _ in 0..3 {
        b.extend_from_slice(&0i16.to_be_bytes()); // no formats, parameters, result formats
    }
    msg(b'B', &b)
}

/// `Describe` of a portal: its RowDescription names the key columns.
fn m_describe_portal(portal: &str) -> Vec<u8> {
    let mut b = vec![b'P'];
    b.extend(cstrs(&[portal]));
    msg(b'D', &b)
}

fn m_execute(portal: &str) -> Vec<u8> {
    let mut b = cstrs(&[portal]);
    b.extend_from_slice(&0i32.to_be_bytes());
    msg(b'E', &b)
}

fn m_query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstrs(&[sql]))
}

fn m_sync() -> Vec<u8> {
    msg(b'S', b"")
}

fn m_flush() -> Vec<u8> {
    msg(b'H', b"")
}

/// A field (`C` SQLSTATE, `S` severity, `M` message) of an `ErrorResponse`.
fn error_field(body: &[u8], field: u8) -> Option<String> {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let end = i + 1 + body[i + 1..].iter().position(|&b| b == 0)?;
        if body[i] == field {
            return Some(String::from_utf8_lossy(&body[i + 1..end]).into_owned());
        }
        i = end + 1;
    }
    None
}

impl Raw {
    /// Connects and sends a startup packet for `user`, without waiting.
    async fn start(addr: SocketAddr, user: &str) -> Raw {
        let mut body = 196608i32.to_be_bytes().to_vec();
        body.extend(cstrs(&["user", user, "database", "postgres", ""]));
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend(body);
        let mut r = Raw {
            s: tokio::net::TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        };
        r.send(&packet).await;
        r
    }

    /// Logs in as a `trust` user: up to the first ReadyForQuery.
    async fn login(addr: SocketAddr, user: &str) -> Raw {
        let mut r = Raw::start(addr, user).await;
        r.until(b'Z').await;
        r
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.s.write_all(bytes).await.unwrap();
    }

    /// The next message, waiting at most 5 s.
    async fn next(&mut self) -> Got {
        use tokio::io::AsyncReadExt;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.buf.len() >= 5 {
                let n = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let len = 1 + n as usize;
                if self.buf.len() >= len {
                    let m: Vec<u8> = self.buf.drain(..len).collect();
                    return Got::Msg(m[0], m[5..].to_vec());
                }
            }
            let mut b = [0u8; 8192];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Got::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&b[..n]),
                Err(_) => return Got::Silent,
            }
        }
    }

    /// Messages up to and with the first of type `ty`.
    async fn until(&mut self, ty: u8) -> Vec<(u8, Vec<u8>)> {
        let mut got = Vec::new();
        loop {
            match self.next().await {
                Got::Msg(t, b) => {
                    got.push((t, b));
                    if t == ty {
                        return got;
                    }
                }
                other => panic!(
                    "no `{}` message ({other:?}); got {:?}",
                    ty as char,
                    got.iter().map(|(t, _)| *t as char).collect::<String>()
                ),
            }
        }
    }
}

fn types(got: &[(u8, Vec<u8>)]) -> String {
    got.iter().map(|(t, _)| *t as char).collect()
}

// ------------------------------------------------------------------ the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn psql_gets_the_same_answers_through_the_proxy_with_scram_md5_and_trust() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let (pg2, port) = (pg.clone(), proxy.port());
    tokio::task::spawn_blocking(move || {
        let q = "SELECT customer_id, name, phone FROM customers WHERE customer_id IN ('C-1', 'C-2') ORDER BY 1";
        let direct = pg2.psql(pg2.port, "anna", Some("anna-pw"), q);
        let proxied = pg2.psql(port, "anna", Some("anna-pw"), q);
        assert!(direct.0, "direct: {}", direct.2);
        assert!(proxied.0, "through the proxy: {}", proxied.2);
        assert_eq!(proxied.1, direct.1);
        assert!(proxied.1.contains("C-1|Anna Berg|+46700000101"));
        // \copy is COPY TO STDOUT underneath.
        let copy = "\\copy (SELECT customer_id, name FROM customers ORDER BY 1) to stdout";
        let direct = pg2.psql(pg2.port, "anna", Some("anna-pw"), copy);
        let proxied = pg2.psql(port, "anna", Some("anna-pw"), copy);
        assert!(proxied.0, "{}", proxied.2);
        assert_eq!(proxied.1, direct.1);
        assert_eq!(proxied.1.lines().count(), 6);
        // md5 and trust pass through too.
        let md5 = pg2.psql(port, "md5user", Some("md5-pw"), "SELECT name FROM customers WHERE customer_id = 'C-3'");
        assert!(md5.0, "md5: {}", md5.2);
        assert_eq!(md5.1.trim(), "Sara Holm");
        let trust = pg2.psql(port, "trusty", None, "SELECT count(*) FROM customers");
        assert!(trust.0, "trust: {}", trust.2);
        assert_eq!(trust.1.trim(), "6");
        let wrong = pg2.psql(port, "md5user", Some("nope"), "SELECT 1");
        assert!(!wrong.0 && wrong.2.contains("password authentication failed"), "{}", wrong.2);
    })
    .await
    .unwrap();
    proxy.stop().await;
    assert_eq!(proxy.customers("anna"), strings(&["C-1", "C-2"]));
    assert_eq!(
        proxy.entries("anna"),
        vec![("search".into(), 2), ("export".into(), 6)]
    );
    assert_eq!(proxy.customers("md5user"), Vec::<String>::new());
    assert_eq!(
        proxy.entries("md5user"),
        vec![("lookup".into(), 1), ("login".into(), 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simple_and_extended_queries_match_direct_and_their_customers_reach_the_ledger() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let direct = connect(pg.port, "anna", "anna-pw").await.unwrap();
    let via = connect(proxy.port(), "anna", "anna-pw").await.unwrap();

    let q =
        "SELECT customer_id, name FROM customers WHERE customer_id IN ('C-1', 'C-2') ORDER BY 1";
    let a = simple_rows(&direct.simple_query(q).await.unwrap());
    let b = simple_rows(&via.simple_query(q).await.unwrap());
    assert_eq!(a, b);
    assert_eq!(b.len(), 2);

    // Extended protocol, prepared with a parameter; results come in binary.
    let p = "SELECT customer_id, name, phone FROM customers WHERE customer_id = $1";
    let sd = direct.prepare(p).await.unwrap();
    let sv = via.prepare(p).await.unwrap();
    for id in ["C-3", "C-4"] {
        assert_eq!(
            rows(&via.query(&sv, &[&id]).await.unwrap()),
            rows(&direct.query(&sd, &[&id]).await.unwrap())
        );
    }
    // An unnamed statement, and a binary int4 key column.
    let n: i32 = via
        .query_one("SELECT 7::int4 AS customer_id, 'x'::text AS note", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
    // A failing statement does not break the session.
    let e = via
        .simple_query("SELECT nope FROM customers")
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(SqlState::UNDEFINED_COLUMN));
    // A multi-statement simple query, an update and a delete.
    let m = via
        .simple_query("SELECT customer_id FROM customers WHERE customer_id = 'C-5'; UPDATE customers_staging SET name = 'x' WHERE customer_id = 'none'; DELETE FROM customers_staging WHERE customer_id = 'none'")
        .await
        .unwrap();
    assert_eq!(simple_rows(&m), vec![vec![Some("C-5".to_string())]]);
    // Utility statements without a table are not recorded.
    via.simple_query("SELECT 1; SET application_name = 'x'")
        .await
        .unwrap();
    drop(via);
    proxy.stop().await;

    // Stopped: no new connections.
    assert!(connect(proxy.port(), "anna", "anna-pw").await.is_err());

    assert_eq!(
        proxy.customers("anna"),
        strings(&["7", "C-1", "C-2", "C-3", "C-4", "C-5"])
    );
    let l = Ledger::open_read(&proxy.data).unwrap();
    let s = l
        .scope_account("anna", Timestamp(0), Timestamp(i64::MAX), None)
        .unwrap();
    let c1 = s.customers.iter().find(|c| c.customer == "C-1").unwrap();
    assert_eq!(
        c1.categories.iter().cloned().collect::<Vec<_>>(),
        strings(&["name", "phone"])
    );
    assert_eq!(
        s.source_ips.keys().cloned().collect::<Vec<_>>(),
        strings(&["127.0.0.1"])
    );
    assert_eq!(
        proxy.entries("anna"),
        vec![
            ("search".into(), 2),
            ("lookup".into(), 1),
            ("lookup".into(), 1),
            ("lookup".into(), 1),
            ("lookup".into(), 0),
            ("lookup".into(), 1),
            ("update".into(), 0),
            ("delete".into(), 0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_to_is_an_export_with_its_row_count_and_copy_from_passes() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let direct = connect(pg.port, "exporter", "exporter-pw").await.unwrap();
    let via = connect(proxy.port(), "exporter", "exporter-pw")
        .await
        .unwrap();
    let (a, b) = (copy_out(&direct).await, copy_out(&via).await);
    assert_eq!(a, b);
    assert_eq!(String::from_utf8(b).unwrap().lines().count(), 6);

    let sink = via
        .copy_in::<_, bytes::Bytes>("COPY customers_staging FROM STDIN")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"S-1\tNew One\t+46700000201\nS-2\tNew Two\t+46700000202\nS-3\tNew Three\t+46700000203\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 3);
    let n: i64 = direct
        .query_one(
            "SELECT count(*) FROM customers_staging WHERE customer_id LIKE 'S-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    direct
        .simple_query("DELETE FROM customers_staging WHERE customer_id LIKE 'S-%'")
        .await
        .unwrap();
    drop(via);
    proxy.stop().await;
    assert_eq!(
        proxy.entries("exporter"),
        vec![("export".into(), 6), ("update".into(), 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_refuses_the_next_statement_within_a_second_and_spares_other_accounts() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let anna = connect(proxy.port(), "anna", "anna-pw").await.unwrap();
    let erik = connect(proxy.port(), "erik", "erik-pw").await.unwrap();
    let q = "SELECT customer_id, name FROM customers WHERE customer_id = 'C-1'";
    let prepared = anna
        .prepare("SELECT customer_id, name FROM customers WHERE customer_id = $1")
        .await
        .unwrap();
    anna.simple_query(q).await.unwrap();
    anna.query(&prepared, &[&"C-2"]).await.unwrap();

    proxy.block("anna");
    let start = Instant::now();
    let err = loop {
        match anna.simple_query(q).await {
            Ok(_) => {
                assert!(
                    start.elapsed() < Duration::from_secs(1),
                    "still passing a second after the block"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => break e,
        }
    };
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(
        code(&err),
        Some(SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    let db = err.as_db_error().unwrap();
    assert!(
        db.message().contains("\"anna\" is blocked by vakt until"),
        "{}",
        db.message()
    );
    assert!(db.detail().unwrap_or("").contains("test by hand"));
    assert!(db.hint().unwrap_or("").contains("security@example.net"));

    // The session is still in step: a prepared statement (extended protocol) is refused too, twice.
    for _ in 0..2 {
        let e = anna.query(&prepared, &[&"C-2"]).await.unwrap_err();
        assert_eq!(code(&e), Some(SqlState::INSUFFICIENT_PRIVILEGE), "{e:?}");
        let e = anna
            .query(
                "SELECT phone FROM customers WHERE customer_id = $1",
                &[&"C-3"],
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), Some(SqlState::INSUFFICIENT_PRIVILEGE), "{e:?}");
    }
    // Another account keeps working.
    let r = erik
        .query_one(
            "SELECT name FROM customers WHERE customer_id = $1",
            &[&"C-4"],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Karl Ek");
    // A new connection is refused at startup.
    let e = refused(connect(proxy.port(), "anna", "anna-pw").await);
    assert_eq!(code(&e), Some(SqlState::INSUFFICIENT_PRIVILEGE), "{e:?}");
    drop((anna, erik));
    proxy.stop().await;
    // Refused statements are recorded as failed attempts without customers.
    assert_eq!(proxy.customers("anna"), strings(&["C-1", "C-2"]));
    // After the reads: the refused simple query, two refused executions of
    // the prepared statement (the prepares were refused before any
    // execution), the refused login.
    let e = proxy.entries("anna");
    assert!(e.len() >= 6, "{e:?}");
    assert_eq!(
        e[e.len() - 4..],
        [
            ("lookup".to_string(), 0),
            ("lookup".to_string(), 0),
            ("lookup".to_string(), 0),
            ("login".to_string(), 0)
        ],
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reading_a_canary_blocks_the_account_through_the_policy() {
    let pg = cluster();
    let directory = format!("{DIRECTORY}\n[[canary]]\ncustomer_id = \"C-900\"\n");
    let mut proxy = Proxy::start(&pg, &directory, |_, _| {}).await;
    let anna = connect(proxy.port(), "anna", "anna-pw").await.unwrap();
    anna.simple_query("SELECT customer_id, name FROM customers WHERE customer_id = 'C-900'")
        .await
        .unwrap();
    let start = Instant::now();
    let err = loop {
        match anna
            .simple_query("SELECT name FROM customers WHERE customer_id = 'C-1'")
            .await
        {
            Ok(_) => {
                assert!(
                    start.elapsed() < Duration::from_secs(3),
                    "no block 3 s after reading a canary"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(
        code(&err),
        Some(SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    assert!(err
        .as_db_error()
        .unwrap()
        .detail()
        .unwrap_or("")
        .contains("canary"));
    drop(anna);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttle_holds_statements_back_for_at_most_the_configured_delay() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |c, g| {
        c.throttle_delay = Duration::from_millis(400);
        g.throttle_per_minute = 1;
    })
    .await;
    let anna = connect(proxy.port(), "anna", "anna-pw").await.unwrap();
    {
        let mut l = Ledger::open(&proxy.data).unwrap();
        let t = vakt_event::Timestamp::now();
        let d = Decision::new(
            "test-throttle".into(),
            Scope::Account,
            "anna",
            Action::Throttle,
            "test".into(),
            Timestamp(t.0 - 1000),
            3_601_000,
        );
        l.put_decision(&d.unwrap()).unwrap();
        l.close().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // the guard re-reads decisions
    let q = "SELECT name FROM customers WHERE customer_id = 'C-1'";
    anna.simple_query(q).await.unwrap(); // the minute's allowance
    let start = Instant::now();
    anna.simple_query(q).await.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    drop(anna);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_request_reaches_postgres_through_the_proxy() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let anna = Arc::new(connect(proxy.port(), "anna", "anna-pw").await.unwrap());
    let token = anna.cancel_token();
    let start = Instant::now();
    let running = {
        let anna = anna.clone();
        tokio::spawn(async move { anna.simple_query("SELECT pg_sleep(10)").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("cancelled well before the 10 s sleep ends")
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(code(&r.unwrap_err()), Some(SqlState::QUERY_CANCELED));
    // The session goes on.
    assert_eq!(
        simple_rows(&anna.simple_query("SELECT 'after'").await.unwrap()),
        vec![vec![Some("after".to_string())]]
    );
    drop(anna);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scram_passes_through_and_a_wrong_password_is_refused_by_postgres() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let ok = connect(proxy.port(), "erik", "erik-pw").await.unwrap();
    let r = ok
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "erik");
    let e = refused(connect(proxy.port(), "erik", "wrong").await);
    assert_eq!(code(&e), Some(SqlState::INVALID_PASSWORD), "{e:?}");
    drop(ok);
    proxy.stop().await;
    assert_eq!(proxy.entries("erik"), vec![("login".into(), 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_input_closes_only_that_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut b = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    };
    // Not a startup packet (a TLS ClientHello, say).
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    assert!(closed(s).await);
    // A startup, then a message with an impossible length.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(b"user\0trusty\0database\0postgres\0\0");
    let mut packet = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    s.write_all(&packet).await.unwrap();
    s.write_all(&[b'Q', 0, 0, 0, 2]).await.unwrap();
    assert!(closed(s).await);
    // Others are served.
    let c = connect(proxy.port(), "erik", "erik-pw").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    drop(c);
    proxy.stop().await;
}

/// Holds the ledger's write lock, as a stuck engine would.
fn lock_ledger(data: &DataDir) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(data.db_path()).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_with_57p03_while_the_engine_is_stuck_and_records_every_attempt() {
    let pg = cluster();
    let mut proxy = Proxy::start_with(&pg, DIRECTORY, FailMode::Closed, 2, |_, _| {}).await;
    let anna = connect(proxy.port(), "anna", "anna-pw").await.unwrap();
    let q = "SELECT customer_id, name FROM customers WHERE customer_id = 'C-1'";
    anna.simple_query(q).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // committed, lock free
    let lock = lock_ledger(&proxy.data);
    // Accesses are appended in memory; the engine sticks at its next
    // commit (when idle for 200 ms), which waits on the lock.
    anna.simple_query(q).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut refused = 0;
    for _ in 0..20 {
        match anna.simple_query(q).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(code(&e), Some(SqlState::CANNOT_CONNECT_NOW), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 15,
        "only {refused} of 20 refused while the engine was stuck"
    );
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let start = Instant::now();
    while anna.simple_query(q).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(anna);
    proxy.stop().await;
    // Every statement is in the ledger, the refused ones too (as failures).
    assert!(
        proxy.entries("anna").len() >= 22,
        "{:?}",
        proxy.entries("anna")
    );
}

// ------------------------------------- findings of a security review, kept fixed

/// Finding 1: the guard was asked only at the first message after a
/// `Sync`, so a batch opened before a block kept reading after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_1_blocked_account_cannot_read_in_an_open_extended_batch() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let mut c = Raw::login(proxy.addr, "trusty").await;
    // A batch opened before the block: one read, flushed, no Sync.
    let read = "SELECT customer_id, name FROM customers WHERE customer_id = 'C-1'";
    c.send(
        &[
            m_parse("s1", read),
            m_bind("", "s1"),
            m_describe_portal(""),
            m_execute(""),
            m_flush(),
        ]
        .concat(),
    )
    .await;
    let got = c.until(b'C').await;
    assert_eq!(types(&got), "12TDC");

    proxy.block("trusty");
    tokio::time::sleep(Duration::from_millis(600)).await; // the guard re-reads decisions
                                                          // The same batch goes on: neither the read nor a change may reach the server.
    c.send(
        &[
            m_bind("", "s1"),
            m_execute(""),
            m_parse(
                "s2",
                "INSERT INTO customers_staging VALUES ('F1-1', 'x', 'y')",
            ),
            m_bind("p2", "s2"),
            m_execute("p2"),
            m_flush(),
        ]
        .concat(),
    )
    .await;
    let got = c.until(b'E').await;
    assert!(!types(&got).contains('D'), "rows after the block: {got:?}");
    let (_, err) = got.last().unwrap();
    assert_eq!(error_field(err, b'C').as_deref(), Some("42501"));
    assert!(error_field(err, b'M')
        .unwrap()
        .contains("\"trusty\" is blocked by vakt"));
    // As PostgreSQL after an error: the rest is discarded up to Sync, then ReadyForQuery.
    c.send(&m_sync()).await;
    assert_eq!(types(&c.until(b'Z').await), "Z");
    // The next batch is refused at its first execution.
    c.send(&[m_bind("", "s1"), m_execute(""), m_sync()].concat())
        .await;
    let got = c.until(b'Z').await;
    assert!(!types(&got).contains('D'), "{got:?}");
    assert!(types(&got).ends_with("EZ"), "{got:?}");
    drop(c);

    let direct = connect(pg.port, "erik", "erik-pw").await.unwrap();
    let n: i64 = direct
        .query_one(
            "SELECT count(*) FROM customers_staging WHERE customer_id = 'F1-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a refused statement reached the server");
    drop(direct);
    proxy.stop().await;
    assert_eq!(proxy.customers("trusty"), strings(&["C-1"]));
    assert_eq!(
        proxy.entries("trusty"),
        vec![
            ("lookup".into(), 1),
            ("lookup".into(), 0),
            ("update".into(), 0),
            ("lookup".into(), 0)
        ]
    );
}

/// Finding 1: a throttle counted batches and simple queries, so one
/// message could carry any number of statements for one allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_1_throttle_counts_statements() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |c, g| {
        c.throttle_delay = Duration::from_millis(400);
        g.throttle_per_minute = 2;
    })
    .await;
    let mut c = Raw::login(proxy.addr, "trusty").await;
    c.send(
        &[
            m_parse("s1", "SELECT name FROM customers WHERE customer_id = 'C-1'"),
            m_sync(),
        ]
        .concat(),
    )
    .await;
    c.until(b'Z').await;
    proxy.decide("trusty", Action::Throttle);
    tokio::time::sleep(Duration::from_millis(600)).await; // the guard re-reads decisions

    // Three statements in one query: two on the allowance, the third held back.
    let start = Instant::now();
    c.send(&m_query(
        "SELECT name FROM customers WHERE customer_id = 'C-1'; \
         SELECT name FROM customers WHERE customer_id = 'C-2'; \
         SELECT name FROM customers WHERE customer_id = 'C-3'",
    ))
    .await;
    let got = c.until(b'Z').await;
    let took = start.elapsed();
    assert_eq!(types(&got).matches('C').count(), 3, "{got:?}");
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "three statements over an allowance of two took {took:?}"
    );
    // Three executions in one batch: each held back.
    let start = Instant::now();
    let mut batch = Vec::new();
    for _ in 0..3 {
        batch.extend(m_bind("", "s1"));
        batch.extend(m_execute(""));
    }
    batch.extend(m_sync());
    c.send(&batch).await;
    let got = c.until(b'Z').await;
    let took = start.elapsed();
    assert_eq!(types(&got).matches('C').count(), 3, "{got:?}");
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_secs(4),
        "three throttled executions in one batch took {took:?}"
    );
    drop(c);
    proxy.stop().await;
}

/// Finding 6: before login the proxy buffered a message of any announced
/// length (a 10 MB `Query` took it from 34 MB to 874 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_6_query_before_login_is_refused_without_allocating() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    // anna logs in with SCRAM: the server asks for it, the client sends a Query instead.
    let mut c = Raw::start(proxy.addr, "anna").await;
    c.until(b'R').await;
    let mut q = vec![b'Q'];
    q.extend_from_slice(&(10_000_000i32).to_be_bytes());
    q.extend(std::iter::repeat_n(b'x', 64 * 1024));
    c.send(&q).await; // and never the rest
    let got = c.until(b'E').await;
    let (_, err) = got.last().unwrap();
    assert_eq!(error_field(err, b'S').as_deref(), Some("FATAL"));
    assert_eq!(error_field(err, b'C').as_deref(), Some("08P01"));
    assert!(matches!(c.next().await, Got::Closed));

    // A short one too: refused by the proxy, not passed to the server.
    let mut c = Raw::start(proxy.addr, "anna").await;
    c.until(b'R').await;
    c.send(&m_query("SELECT 1")).await;
    let got = c.until(b'E').await;
    let (_, err) = got.last().unwrap();
    assert_eq!(error_field(err, b'C').as_deref(), Some("08P01"));
    assert!(
        error_field(err, b'M').unwrap().contains("before login"),
        "{:?}",
        error_field(err, b'M')
    );
    assert!(matches!(c.next().await, Got::Closed));
    proxy.stop().await;
}

/// Finding 6: after login a message was buffered up to PostgreSQL's 1 GiB
/// limit as soon as its length was announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_6_oversized_message_after_login_is_refused_with_a_clear_error() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let mut c = Raw::login(proxy.addr, "trusty").await;
    let mut q = vec![b'Q'];
    q.extend_from_slice(&(100i32 << 20).to_be_bytes());
    q.extend(std::iter::repeat_n(b'x', 64 * 1024));
    c.send(&q).await;
    let got = c.until(b'E').await;
    let (_, err) = got.last().unwrap();
    assert_eq!(error_field(err, b'S').as_deref(), Some("FATAL"));
    assert_eq!(error_field(err, b'C').as_deref(), Some("54000"));
    assert!(matches!(c.next().await, Got::Closed));
    proxy.stop().await;
}

/// Finding 6: a simple query's statements were all scanned and kept,
/// however many there were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_6_too_many_statements_in_one_query_are_refused() {
    let pg = cluster();
    let mut proxy = Proxy::start(&pg, DIRECTORY, |_, _| {}).await;
    let c = connect(proxy.port(), "anna", "anna-pw").await.unwrap();
    let many = "SELECT 1;".repeat(10_001);
    let e = c.simple_query(&many).await.unwrap_err();
    assert_eq!(code(&e), Some(SqlState::PROGRAM_LIMIT_EXCEEDED), "{e:?}");
    // The session goes on.
    assert_eq!(
        simple_rows(&c.simple_query("SELECT 'after'").await.unwrap()),
        vec![vec![Some("after".to_string())]]
    );
    drop(c);
    proxy.stop().await;
}
