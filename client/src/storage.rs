//! Where a device keeps its resume watermarks between runs: in memory (a
//! process that starts fresh each time), or in a JSON file written
//! atomically (an app that resumes after a restart without a full resync).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use confab_protocol::model::{ChatId, Seq};

/// A chat's watermarks, stored.
pub trait Watermarks: Send + Sync {
    /// What was saved last (empty at first).
    fn load(&self) -> BTreeMap<ChatId, Seq>;
    /// Replaces what is saved.
    fn save(&self, watermarks: &BTreeMap<ChatId, Seq>) -> std::io::Result<()>;
}

/// Watermarks kept in memory only.
#[derive(Debug, Default)]
pub struct InMemory(Mutex<BTreeMap<ChatId, Seq>>);

impl Watermarks for InMemory {
    fn load(&self) -> BTreeMap<ChatId, Seq> {
        self.0.lock().expect("watermarks lock").clone()
    }

    fn save(&self, watermarks: &BTreeMap<ChatId, Seq>) -> std::io::Result<()> {
        *self.0.lock().expect("watermarks lock") = watermarks.clone();
        Ok(())
    }
}

/// Watermarks in a JSON file; a save writes a new file and renames it over
/// the old one, so a crash leaves one or the other, never half of each.
#[derive(Debug)]
pub struct JsonFile {
    path: PathBuf,
}

impl JsonFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl Watermarks for JsonFile {
    /// A missing or unreadable file reads as no watermarks: the next
    /// `hello` resyncs from the start, which loses nothing.
    fn load(&self) -> BTreeMap<ChatId, Seq> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, watermarks: &BTreeMap<ChatId, Seq>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(watermarks)?)?;
        std::fs::rename(tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_keeps_what_was_saved_and_reads_garbage_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = JsonFile::new(dir.path().join("w.json"));
        assert!(file.load().is_empty());
        let w = BTreeMap::from([(ChatId::from_u128(1), 42)]);
        file.save(&w).unwrap();
        assert_eq!(JsonFile::new(dir.path().join("w.json")).load(), w);
        std::fs::write(dir.path().join("w.json"), b"{not json").unwrap();
        assert!(file.load().is_empty());
    }
}
