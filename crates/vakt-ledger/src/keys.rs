//! The data directory and its signing key.

use crate::{LedgerError, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use std::path::{Path, PathBuf};

/// A vakt data directory: `ledger.db`, `ledger.key` (secret), `ledger.pub`.
///
/// The ledger holds access records, TOTP secrets, password hashes and token
/// digests, so the directory is created `0700` and the database `0600`
/// (SQLite gives its `-wal` and `-shm` files the database's mode); a
/// directory or file that others may read is named at open with a warning.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    /// `--data`, else `$VAKT_DATA`, else `./vakt-data`.
    pub fn resolve(flag: Option<&Path>) -> DataDir {
        let path = flag
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("VAKT_DATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("vakt-data"));
        DataDir { path }
    }

    pub fn exists(&self) -> bool {
        self.path.join("ledger.key").exists()
    }

    /// Creates the directory and its key pair; an existing key is kept.
    /// Returns whether anything was created.
    pub fn init(&self) -> Result<bool> {
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        create_private_dir(&self.path).map_err(io)?;
        if self.exists() {
            return Ok(false);
        }
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let key_path = self.path.join("ledger.key");
        write_secret(&key_path, hex(&seed).as_bytes()).map_err(|source| LedgerError::Io {
            path: key_path,
            source,
        })?;
        let pub_path = self.path.join("ledger.pub");
        std::fs::write(&pub_path, hex(key.verifying_key().as_bytes())).map_err(|source| {
            LedgerError::Io {
                path: pub_path,
                source,
            }
        })?;
        Ok(true)
    }

    pub fn signing_key(&self) -> Result<SigningKey> {
        let path = self.path.join("ledger.key");
        Ok(SigningKey::from_bytes(&read_hex32(
            &path,
            "run `vakt init` on a new data directory",
        )?))
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        public_key_file(
            &self.path.join("ledger.pub"),
            "restore ledger.pub from the key's backup",
        )
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("ledger.db")
    }

    /// Where the entry store keeps its files.
    pub fn entries_path(&self) -> PathBuf {
        self.path.join("entries")
    }

    /// The directory, and the files in it, that users other than the owner
    /// may read, write or enter, with their modes; the public key is not
    /// counted. Empty where modes do not exist (not Unix).
    pub fn loose_permissions(&self) -> Vec<(PathBuf, u32)> {
        let mut loose = Vec::new();
        let mut check = |path: PathBuf| {
            if let Some(mode) = mode_of(&path).filter(|m| m & 0o077 != 0) {
                loose.push((path, mode));
            }
        };
        check(self.path.clone());
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                if e.file_name() != "ledger.pub" {
                    check(e.path());
                }
            }
        }
        loose
    }

    /// Logs, once per directory and process, what [`DataDir::loose_permissions`] finds.
    pub(crate) fn warn_if_loose(&self) {
        static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if warned.contains(&self.path) {
            return;
        }
        warned.push(self.path.clone());
        for (path, mode) in self.loose_permissions() {
            tracing::warn!(
                "{} is readable by other users (mode {mode:o}); it holds access records and secrets: chmod {} {}",
                path.display(),
                if path == self.path { "700" } else { "600" },
                path.display()
            );
        }
    }

    /// Creates `ledger.db` readable by its owner only, before SQLite opens it.
    pub(crate) fn create_private_db(&self) -> std::io::Result<()> {
        let path = self.db_path();
        if path.exists() {
            return Ok(());
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path).map(drop)
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::metadata(path).ok()?.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode_of(_path: &Path) -> Option<u32> {
    None
}

/// A public key written as hex in a file (a copy of some `ledger.pub`);
/// `fix` says what to do when it is not one.
pub fn public_key_file(path: &Path, fix: &str) -> Result<VerifyingKey> {
    let bytes = read_hex32(path, fix)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| LedgerError::Key {
        path: path.to_owned(),
        message: format!("{e}; {fix}"),
    })
}

/// Which key signed: the first 16 hex digits of the BLAKE3 of its bytes.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex(&blake3::hash(key.as_bytes()).as_bytes()[..8])
}

/// 32 bytes written as hex in a file.
fn read_hex32(path: &Path, fix: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|source| LedgerError::Io {
        path: path.to_owned(),
        source,
    })?;
    unhex(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LedgerError::Key {
            path: path.to_owned(),
            message: format!("not a 32-byte hex key; {fix}"),
        })
}

#[cfg(unix)]
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
