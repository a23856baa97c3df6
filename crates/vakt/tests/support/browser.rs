//! Headless Chromium driven through chromedriver (WebDriver), for the
//! console's browser tests. Skipped, with a message, where Debian's
//! `chromium` and `chromium-driver` are not installed.

use super::{free_port, Child, WAIT};
use fantoccini::{elements::Element, Client, Locator};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser session; the driver is stopped when it is dropped, and so
/// is the browser even when a test panicked before closing its session
/// (chromedriver leaves it running otherwise).
pub struct Browser {
    pub client: Client,
    profile: PathBuf,
    _driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let mark = format!("--user-data-dir={}", self.profile.display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|arg| arg == mark.as_bytes()) {
                // SAFETY: a plain signal to a process this test started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// A browser with its profile under `tmp`, or `None` (and a message)
/// when Chromium is not installed.
pub async fn start(tmp: &Path) -> Option<Browser> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; ./scripts/test installs them)");
        return None;
    }
    let port = free_port();
    let driver = Child::spawn(
        "chromedriver",
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null()),
    )
    .unwrap();
    let webdriver = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    let status: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WAIT))
        .build()
        .into();
    while status.get(&format!("{webdriver}/status")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tmp.join("chromium-profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = tokio::time::timeout(
        Duration::from_secs(60),
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver),
    )
    .await
    .expect("a Chromium session within 60 s")
    .expect("chromedriver makes a session");
    Some(Browser {
        client,
        profile,
        _driver: driver,
    })
}

/// The element `css` once it is on the page (at most [`WAIT`]).
pub async fn wait(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Where screenshots go: `target/console-screenshots`.
pub fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(name), png).unwrap();
}

/// Types `text` into the field `css` after clearing it.
pub async fn fill(c: &Client, css: &str, text: &str) {
    let e = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Signs in through the sign-in form at `url`.
pub async fn sign_in(c: &Client, url: &str, user: &str, password: &str) {
    c.goto(&format!("{url}/login")).await.unwrap();
    wait(c, "#user").await.send_keys(user).await.unwrap();
    fill(c, "#password", password).await;
    click(c, "#signin").await;
    wait(c, "#signed-in").await;
}
