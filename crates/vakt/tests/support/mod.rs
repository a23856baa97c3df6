//! What the end-to-end tests share: the `vakt` binary as a command, and
//! its servers started as child processes (see `vakt_server::child`).
//! Each test file uses its own part of it.
#![allow(dead_code)]

pub mod browser;

use std::process::{Command, Stdio};
use std::time::Duration;
pub use vakt_server::child::Child;

pub const VAKT: &str = env!("CARGO_BIN_EXE_vakt");
/// Longest wait for anything a server does by itself.
pub const WAIT: Duration = Duration::from_secs(20);

/// The `vakt` binary under test, as a command to add arguments to.
pub fn vakt() -> Command {
    Command::new(VAKT)
}

/// Starts `vakt ARGS...` (a server: `serve`, `proxy`) and waits until it
/// says where it listens; returns it (killed when dropped) and the address.
pub fn start(cmd: &mut Command) -> (Child, String) {
    let what = format!("vakt {:?}", cmd.get_args().collect::<Vec<_>>());
    let mut child = Child::spawn(what, cmd.stdin(Stdio::null())).unwrap_or_else(|e| panic!("{e}"));
    let address = child.listening(WAIT).unwrap_or_else(|e| panic!("{e}"));
    (child, address)
}

/// Starts `vakt serve` on a free port of 127.0.0.1 with `args` after
/// `--data DATA`; returns it and its base URL.
pub fn serve(data: &std::path::Path, args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut cmd = vakt();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .stdout(Stdio::null());
    start(&mut cmd)
}

/// A port free on 127.0.0.1 now (for programs that cannot be given port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Any child process (a browser driver), killed and reaped when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One access event: `user` reads the canary customer C-900001.
pub fn canary_read(user: &str) -> String {
    format!("{{\"@timestamp\":\"2026-11-02T08:00:00Z\",\"user.name\":\"{user}\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-900001\"]}}\n")
}

/// `vakt watch --data TMP/data --directory TMP/dir.toml` over `input`
/// written to TMP/NAME; fails the test unless it succeeds.
pub fn watch_into(tmp: &std::path::Path, name: &str, input: &str) -> std::process::Output {
    let file = tmp.join(name);
    std::fs::write(&file, input).unwrap();
    let out = vakt()
        .args(["watch", "--data"])
        .arg(tmp.join("data"))
        .arg("--directory")
        .arg(tmp.join("dir.toml"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
