//! A throwaway PostgreSQL cluster: `initdb` into a temporary directory,
//! `postgres` on 127.0.0.1 and a free port, stopped (and its files
//! removed) when dropped, even on a panic.
//!
//! The server binaries come from `/usr/lib/postgresql/<newest>/bin` or
//! `PATH`; without them [`TempCluster::start`] says what to install. As
//! root (which `initdb` refuses) the cluster runs as the `postgres` user,
//! else `nobody`.
//!
//! ```no_run
//! let pg = vakt_pgtemp::TempCluster::start(&Default::default()).unwrap();
//! pg.psql("CREATE DATABASE scratch").unwrap();
//! println!("connect to {}", pg.url("scratch"));
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The `postgres` superuser's password.
pub const PASSWORD: &str = "secret";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PostgreSQL server binaries (initdb, postgres, psql) were found neither in /usr/lib/postgresql/*/bin nor on PATH; install them: apt-get install -y postgresql")]
    NoServer,
    #[error(
        "running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as"
    )]
    NoUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} failed: {output}")]
    Failed { what: String, output: String },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// How to start the cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `pg_hba.conf`; by default the socket trusts, TCP asks for a SCRAM password.
    pub hba: Option<String>,
    /// Server settings (`-c name=value`), beside `fsync=off`.
    pub settings: Vec<(String, String)>,
}

const HBA: &str = "
local all all trust
host all all 127.0.0.1/32 scram-sha-256
";

pub struct TempCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    postgres: Child,
    user: Option<(u32, u32)>,
}

impl TempCluster {
    /// Starts a cluster and waits (up to 30 s) until it accepts connections.
    pub fn start(opts: &Options) -> Result<TempCluster> {
        let bin = server_bin().ok_or(Error::NoServer)?;
        let user = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("vakt-pg")
            .tempdir()
            .map_err(io("a temporary directory for PostgreSQL"))?;
        let chown = |p: &Path| -> Result<()> {
            if let Some((u, g)) = user {
                std::os::unix::fs::chown(p, Some(u), Some(g))
                    .map_err(io(format!("chown {}", p.display())))?;
            }
            Ok(())
        };
        chown(dir.path())?;
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).map_err(io("the password file"))?;
        chown(&pwfile)?;
        let out = as_user(&mut Command::new(bin.join("initdb")), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(dir.path())
            .output()
            .map_err(io("initdb"))?;
        if !out.status.success() {
            return Err(Error::Failed {
                what: "initdb".into(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        std::fs::write(data.join("pg_hba.conf"), opts.hba.as_deref().unwrap_or(HBA))
            .map_err(io("pg_hba.conf"))?;
        let port = free_port()?;
        let log =
            std::fs::File::create(dir.path().join("postgres.log")).map_err(io("postgres.log"))?;
        let mut cmd = Command::new(bin.join("postgres"));
        as_user(&mut cmd, user)
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={port}")])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "max_connections=200"]);
        for (k, v) in &opts.settings {
            cmd.args(["-c", &format!("{k}={v}")]);
        }
        let postgres = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("postgres.log"))?)
            .stderr(log)
            .spawn()
            .map_err(io("postgres"))?;
        let mut c = TempCluster {
            dir,
            bin,
            port,
            postgres,
            user,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = c.postgres.try_wait() {
                return Err(Error::Failed {
                    what: format!("postgres (exited with {status})"),
                    output: c.log(),
                });
            }
            if c.psql("SELECT 1").is_ok() {
                return Ok(c);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::Failed {
                    what: "postgres accepting connections within 30 s".into(),
                    output: c.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One cluster for everything running at the same time in this
    /// process, started on first use (with default [`Options`]) and
    /// stopped when the last holder lets go.
    pub fn shared() -> Result<Arc<TempCluster>> {
        static SHARED: Mutex<Weak<TempCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = shared.upgrade() {
            return Ok(c);
        }
        let c = Arc::new(TempCluster::start(&Options::default())?);
        *shared = Arc::downgrade(&c);
        Ok(c)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding `initdb`, `postgres` and `psql`.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The directory of the cluster's files (`data/`, `postgres.log`) and socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The uid and gid the server runs as, when not ourselves.
    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// A URL for the superuser over TCP to database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Runs `sql` as the superuser over the socket, in database `postgres`;
    /// returns its unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_in("postgres", sql)
    }

    /// [`TempCluster::psql`] in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(io("psql"))?;
        if !out.status.success() {
            return Err(Error::Failed {
                what: format!("psql -c {sql:?}"),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl TempCluster {
    /// Shuts the server down cleanly (a fast shutdown: what it logged is
    /// on disk after), keeping its files until the cluster is dropped.
    pub fn stop(&mut self) {
        self.shut_down(libc::SIGINT, Duration::from_secs(30));
    }

    /// Sends `signal`, then kills the server if it is still up after `patience`.
    fn shut_down(&mut self, signal: libc::c_int, patience: Duration) {
        if let Ok(Some(_)) = self.postgres.try_wait() {
            return;
        }
        unsafe { libc::kill(self.postgres.id() as i32, signal) };
        let start = Instant::now();
        while start.elapsed() < patience {
            if let Ok(Some(_)) = self.postgres.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.postgres.kill();
        let _ = self.postgres.wait();
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        // Immediate shutdown: nothing of a throwaway cluster is kept.
        self.shut_down(libc::SIGQUIT, Duration::from_secs(5));
    }
}

/// The newest `/usr/lib/postgresql/*/bin`, else a `PATH` entry with the
/// server binaries.
pub fn server_bin() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").exists() && d.join("postgres").exists();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| has(p))
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .find(|d| has(d) && d.join("psql").exists())
    })
}

/// Ourselves, or when root the `postgres` user, else `nobody`.
fn run_as() -> Result<Option<(u32, u32)>> {
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str, user: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    for user in ["postgres", "nobody"] {
        if let (Some(u), Some(g)) = (id("-u", user), id("-g", user)) {
            return Ok(Some((u, g)));
        }
    }
    Err(Error::NoUser)
}

/// `cmd`, set to run as `who` when given.
pub fn as_user(cmd: &mut Command, who: Option<(u32, u32)>) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((u, g)) = who {
        cmd.uid(u).gid(g);
    }
    cmd
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("a free port"))?;
    Ok(l.local_addr().map_err(io("a free port"))?.port())
}
