//! Following a mounted ConfigMap: read the directory into a [`Snapshot`] and re-read it when it
//! changes.
//!
//! The kubelet never edits a mounted ConfigMap in place. It writes the new files into a fresh
//! timestamped directory (`..2026_11_22_00_00_00.123456789/`), points a new symlink
//! `..data_tmp` at it and renames that over `..data`; the visible files are symlinks
//! `key -> ..data/key`. So one rename switches every key at once, and the moment to re-read is a
//! create/rename in the directory itself: [`follow`] watches it with inotify (via `notify`),
//! waits a few milliseconds for a burst of events to settle and reads again. Plain edits of a
//! file (outside Kubernetes) produce write events and are followed the same way. A periodic
//! re-read covers missed events, a directory that appears later, and machines where inotify
//! cannot be used.
//!
//! A read that fails (a dangling key symlink in the middle of a swap, a permission problem)
//! keeps the last good snapshot and logs why, once per distinct error; a missing directory is
//! simply an empty config.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::metrics::Metrics;

/// How long to wait after the first event before reading, so that the several events of one
/// kubelet swap lead to one read.
const SETTLE: Duration = Duration::from_millis(30);

/// One consistent read of the config directory: visible file name -> content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) files: BTreeMap<String, String>,
    /// Short stable hash of `files`; `None` when there are none.
    pub(crate) hash: Option<String>,
}

impl Snapshot {
    fn new(files: BTreeMap<String, String>) -> Self {
        let hash = (!files.is_empty()).then(|| content_hash(&files));
        Snapshot { files, hash }
    }
}

/// FNV-1a (64 bit) over names and contents, as 12 hex digits. Stable across builds and
/// platforms, unlike `std`'s hasher, so two pods with the same ConfigMap report the same value.
fn content_hash(files: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, content) in files {
        feed(name.as_bytes());
        feed(&[0]);
        feed(&(content.len() as u64).to_le_bytes());
        feed(content.as_bytes());
    }
    format!("{:012x}", hash >> 16)
}

/// Reads the directory: every visible entry that is (or links to) a regular file. Entries whose
/// name starts with `.` are kubelet's bookkeeping (`..data`, `..data_tmp`, the timestamped
/// directories) or hidden files, and are skipped. Symlinks are followed.
pub(crate) fn read_dir(dir: &Path) -> Result<Snapshot, Error> {
    let read_error = |path: &Path, source: io::Error| Error::ConfigRead {
        path: path.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(err) => return Err(read_error(dir, err)),
    };
    let mut files = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|err| read_error(dir, err))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            debug!(path = %path.display(), "skipping config entry with a non UTF-8 name");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        // `metadata` follows the symlink: a dangling `key -> ..data/key` is an error, which
        // keeps the previous snapshot until the swap is complete.
        let meta = fs::metadata(&path).map_err(|err| read_error(&path, err))?;
        if meta.is_dir() {
            debug!(path = %path.display(), "skipping config subdirectory");
            continue;
        }
        let bytes = fs::read(&path).map_err(|err| read_error(&path, err))?;
        let content = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        };
        files.insert(name, content);
    }
    Ok(Snapshot::new(files))
}

/// The current snapshot of one instance, swapped whole on reload.
#[derive(Debug, Default)]
pub(crate) struct ConfigSlot(RwLock<Arc<Snapshot>>);

impl ConfigSlot {
    pub(crate) fn get(&self) -> Arc<Snapshot> {
        Arc::clone(&self.0.read().unwrap_or_else(|poison| poison.into_inner()))
    }

    pub(crate) fn set(&self, snapshot: Snapshot) {
        *self.0.write().unwrap_or_else(|poison| poison.into_inner()) = Arc::new(snapshot);
    }
}

/// Reads `dir` into `slot` now, then whenever it changes, until `stop` is cancelled.
pub(crate) async fn follow(
    dir: PathBuf,
    poll_interval: Duration,
    slot: &ConfigSlot,
    metrics: &Metrics,
    stop: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let mut watch: Option<(RecommendedWatcher, u64)> = None;
    let mut watch_failed = false;
    let mut last_error: Option<String> = None;
    let poll_interval = poll_interval.max(Duration::from_millis(10));
    loop {
        let inode = fs::metadata(&dir).ok().map(|meta| meta.ino());
        // (Re)start the watch when the directory appeared or was replaced.
        if inode != watch.as_ref().map(|(_, ino)| *ino) {
            watch = None;
            if let Some(inode) = inode {
                match start_watch(&dir, &wake) {
                    Ok(watcher) => {
                        debug!(dir = %dir.display(), "watching config directory");
                        watch = Some((watcher, inode));
                        watch_failed = false;
                        // Changes between the last read and the new watch would be lost.
                        wake.notify_one();
                    }
                    Err(err) if !watch_failed => {
                        watch_failed = true;
                        warn!(dir = %dir.display(), error = %err,
                            "cannot watch config directory; re-reading it every {poll_interval:?} instead");
                    }
                    Err(_) => {}
                }
            }
        }

        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(SETTLE) => {}
                }
            }
            () = tokio::time::sleep(poll_interval) => {}
        }

        let read = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || read_dir(&dir)).await
        };
        match read {
            Ok(Ok(snapshot)) => {
                last_error = None;
                if *slot.get() != snapshot {
                    metrics.reload(true);
                    info!(
                        dir = %dir.display(),
                        hash = snapshot.hash.as_deref().unwrap_or("none"),
                        keys = ?snapshot.files.keys().collect::<Vec<_>>(),
                        "config reloaded"
                    );
                    slot.set(snapshot);
                }
            }
            Ok(Err(err)) => {
                let message = err.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    metrics.reload(false);
                    warn!(error = %message, "config not reloaded, keeping the last good one");
                    last_error = Some(message);
                }
            }
            Err(join) => warn!(error = %join, "config read task failed"),
        }
    }
}

/// Watches `dir` itself (not recursively): kubelet's swap and plain edits both show up as
/// events on the directory's entries. Reads (open/access events) are ignored, since reading the
/// config would otherwise trigger the next read.
fn start_watch(dir: &Path, wake: &Arc<Notify>) -> notify::Result<RecommendedWatcher> {
    let wake = Arc::clone(wake);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant =
            event.is_err() || event.is_ok_and(|event| !matches!(event.kind, EventKind::Access(_)));
        if relevant {
            wake.notify_one();
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn missing_directory_is_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = read_dir(&dir.path().join("absent")).unwrap();
        assert_eq!(snapshot, Snapshot::default());
        assert_eq!(snapshot.hash, None);
    }

    #[test]
    fn reads_files_and_follows_symlinks_skipping_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_22_00_00_00.1");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("greeting"), "hello").unwrap();
        symlink("..2026_11_22_00_00_00.1", dir.path().join("..data")).unwrap();
        symlink("..data/greeting", dir.path().join("greeting")).unwrap();
        fs::write(dir.path().join("plain"), "file").unwrap();
        fs::write(dir.path().join(".hidden"), "no").unwrap();
        fs::create_dir(dir.path().join("subdir")).unwrap();

        let snapshot = read_dir(dir.path()).unwrap();
        let names: Vec<_> = snapshot.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["greeting", "plain"]);
        assert_eq!(snapshot.files["greeting"], "hello");
        assert_eq!(snapshot.hash.as_ref().map(String::len), Some(12));
    }

    #[test]
    fn dangling_key_symlink_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        symlink("..data/greeting", dir.path().join("greeting")).unwrap();
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("greeting"), "{err}");
    }

    #[test]
    fn hash_is_stable_and_content_sensitive() {
        let files = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let a = content_hash(&files(&[("greeting", "hello")]));
        assert_eq!(a, content_hash(&files(&[("greeting", "hello")])));
        assert_ne!(a, content_hash(&files(&[("greeting", "hello!")])));
        // Moving bytes between name and content changes the hash.
        assert_ne!(
            content_hash(&files(&[("ab", "c")])),
            content_hash(&files(&[("a", "bc")]))
        );
        // A golden value: the hash must not change between builds or releases.
        assert_eq!(a, "e4ef0ade4d8a");
    }
}
