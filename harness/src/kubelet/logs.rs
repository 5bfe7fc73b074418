//! [`ContainerLog`]: what one container instance wrote to stdout and stderr, as `kubectl logs`
//! reads it.
//!
//! Output is kept as timestamped lines (for `--timestamps` and `--since`) in a ring bounded by
//! bytes, like the kubelet's rotated log files: old lines fall off, the process never blocks on
//! its pipe. Followers get the lines already kept and then every new one, with no gap between
//! the two, until the instance ends. The runtimes fill it with [`pump`], one per output stream.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{broadcast, watch};

/// Default cap of one instance's kept output.
pub const DEFAULT_LOG_BYTES: usize = 1024 * 1024;
/// Longest line kept whole; longer output is split, as CRI marks partial lines.
pub const MAX_LINE: usize = 16 * 1024;

/// One line of output, with its newline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub time: Timestamp,
    pub bytes: Vec<u8>,
}

/// The output of one container instance.
#[derive(Debug)]
pub struct ContainerLog {
    inner: Mutex<Inner>,
    lines: broadcast::Sender<Arc<LogLine>>,
    ended: watch::Sender<bool>,
}

#[derive(Debug)]
struct Inner {
    kept: VecDeque<Arc<LogLine>>,
    bytes: usize,
    cap: usize,
}

impl ContainerLog {
    /// An empty log keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Arc<ContainerLog> {
        let (lines, _) = broadcast::channel(1024);
        let (ended, _) = watch::channel(false);
        Arc::new(ContainerLog {
            inner: Mutex::new(Inner {
                kept: VecDeque::new(),
                bytes: 0,
                cap,
            }),
            lines,
            ended,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one line (the caller splits output into lines).
    pub fn push(&self, bytes: Vec<u8>) {
        let line = Arc::new(LogLine {
            time: Timestamp::now(),
            bytes,
        });
        let mut inner = self.lock();
        inner.bytes += line.bytes.len();
        inner.kept.push_back(line.clone());
        while inner.bytes > inner.cap {
            match inner.kept.pop_front() {
                Some(old) => inner.bytes -= old.bytes.len(),
                None => break,
            }
        }
        // Sent under the lock so that `follow` never sees a line twice or misses one.
        let _ = self.lines.send(line);
    }

    /// Marks the instance as ended: followers stop after the last line.
    pub fn end(&self) {
        self.ended.send_replace(true);
    }

    /// Whether the instance has ended.
    pub fn has_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// The kept lines.
    pub fn lines(&self) -> Vec<Arc<LogLine>> {
        self.lock().kept.iter().cloned().collect()
    }

    /// The kept output as bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock()
            .kept
            .iter()
            .flat_map(|l| l.bytes.iter().copied())
            .collect()
    }

    /// The kept lines and a follower for the ones after them.
    pub fn follow(&self) -> (Vec<Arc<LogLine>>, LogFollower) {
        let inner = self.lock();
        let receiver = self.lines.subscribe();
        let kept = inner.kept.iter().cloned().collect();
        drop(inner);
        (
            kept,
            LogFollower {
                lines: receiver,
                ended: self.ended.subscribe(),
            },
        )
    }
}

/// New lines of a [`ContainerLog`] as they come.
#[derive(Debug)]
pub struct LogFollower {
    lines: broadcast::Receiver<Arc<LogLine>>,
    ended: watch::Receiver<bool>,
}

impl LogFollower {
    /// The next line; `None` once the instance has ended and every line was delivered. A
    /// follower too slow to keep up skips the lines it missed.
    pub async fn next(&mut self) -> Option<Arc<LogLine>> {
        loop {
            match self.lines.try_recv() {
                Ok(line) => return Some(line),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(broadcast::error::TryRecvError::Closed) => return None,
                Err(broadcast::error::TryRecvError::Empty) => {}
            }
            if *self.ended.borrow_and_update() {
                return None;
            }
            tokio::select! {
                line = self.lines.recv() => match line {
                    Ok(line) => return Some(line),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = self.ended.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

/// Splits a byte stream into lines for a [`ContainerLog`].
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; complete lines (and over-long pieces) go to `log`.
    pub fn feed(&mut self, mut bytes: &[u8], log: &ContainerLog) {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..=i]);
            log.push(std::mem::take(&mut self.partial));
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            log.push(std::mem::replace(&mut self.partial, rest));
        }
    }

    /// Flushes an unterminated last line.
    pub fn finish(&mut self, log: &ContainerLog) {
        if !self.partial.is_empty() {
            log.push(std::mem::take(&mut self.partial));
        }
    }
}

/// Copies a container's output stream (a process's pipe, a followed Docker stream) into `log`,
/// line by line, until it ends or fails.
pub async fn pump(mut stream: impl AsyncRead + Unpin, log: Arc<ContainerLog>) {
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => splitter.feed(&buf[..n], &log),
        }
    }
    splitter.finish(&log);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes() {
        let log = ContainerLog::new(10);
        let mut split = LineSplitter::default();
        split.feed(b"aaaa\nbbbb\ncc", &log);
        assert_eq!(log.bytes(), b"aaaa\nbbbb\n");
        split.feed(b"c\n", &log);
        assert_eq!(log.bytes(), b"bbbb\nccc\n");
        split.feed(b"tail", &log);
        split.finish(&log);
        assert_eq!(log.bytes(), b"ccc\ntail");
    }

    #[test]
    fn splits_over_long_lines() {
        let log = ContainerLog::new(DEFAULT_LOG_BYTES);
        let mut split = LineSplitter::default();
        split.feed(&vec![b'x'; MAX_LINE * 2 + 3], &log);
        assert_eq!(log.lines().len(), 2);
        split.finish(&log);
        assert_eq!(log.lines().len(), 3);
    }

    #[tokio::test]
    async fn followers_get_old_and_new_lines_then_end() {
        let log = ContainerLog::new(DEFAULT_LOG_BYTES);
        log.push(b"one\n".to_vec());
        let (kept, mut follower) = log.follow();
        assert_eq!(kept.len(), 1);
        let writer = log.clone();
        let task = tokio::spawn(async move {
            writer.push(b"two\n".to_vec());
            writer.end();
        });
        assert_eq!(follower.next().await.unwrap().bytes, b"two\n");
        assert!(follower.next().await.is_none());
        task.await.unwrap();
        assert!(log.has_ended());
    }
}
