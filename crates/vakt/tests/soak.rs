//! `vakt serve` under a mixed flood on 127.0.0.1 (oversized bodies,
//! slowloris, CSP reports from rotating origins, made-up tokens, a sign-in
//! storm) for a bounded time: every honest ingest batch is answered 200 and
//! the server's resident memory stays under 256 MiB. `vakt bench soak`
//! does the work and fails otherwise; the README quotes a longer run.

use std::process::Command;

#[test]
fn serve_keeps_answering_honest_ingest_under_a_mixed_flood_within_its_memory_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args([
            "bench",
            "soak",
            "--seconds",
            "20",
            "--max-rss-mib",
            "256",
            "--dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every flooder was answered (or cut off), and the honest client too.
    for kind in [
        "oversized bodies",
        "slowloris",
        "CSP from rotating origins",
        "made-up tokens",
        "sign-in storm",
    ] {
        assert!(stdout.contains(kind), "{stdout}");
    }
    assert!(stdout.contains(", 0 failed,"), "{stdout}");
    assert!(
        stdout.contains("made-up tokens") && stdout.contains("401:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("429:"),
        "the CSP flood and the sign-in storm were limited: {stdout}"
    );
}
