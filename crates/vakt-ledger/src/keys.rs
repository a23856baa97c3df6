//! The data directory and its signing key.

use crate::{LedgerError, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use std::path::{Path, PathBuf};

/// A vakt data directory: `ledger.db`, `ledger.key` (secret), `ledger.pub`.
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
        std::fs::create_dir_all(&self.path).map_err(io)?;
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
        let path = self.path.join("ledger.pub");
        let bytes = read_hex32(&path, "restore ledger.pub from the key's backup")?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| LedgerError::Key {
            path,
            message: e.to_string(),
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("ledger.db")
    }
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
