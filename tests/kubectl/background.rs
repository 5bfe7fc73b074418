//! kubectl in the background (`get --watch`, `port-forward`): its lines as they come, waits
//! on them with deadlines, and a kill when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines a background process has printed, shared with its reader threads.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A kubectl running in the background; its stdout and stderr lines are collected. Dropping it
/// kills it.
pub struct Background {
    shown: String,
    child: Child,
    lines: Arc<Lines>,
}

impl Background {
    /// Starts `command` in the background; `shown` names it in failures.
    pub fn spawn(shown: String, mut command: Command) -> Background {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {shown}: {err}"));
        let lines = Arc::new(Lines::default());
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lines.lock().unwrap().push(line);
                    lines.changed.notify_all();
                }
            });
        }
        Background {
            shown,
            child,
            lines,
        }
    }

    /// Every line so far (stdout and stderr, in arrival order).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lines.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `check`; returns it.
    pub fn wait_line(&self, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        self.wait_lines(timeout, "a matching line", |lines| {
            lines.iter().find(|l| check(l)).cloned()
        })
    }

    /// Waits until `check` over all lines so far gives `Some`.
    pub fn wait_lines<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lines.lock().unwrap();
        loop {
            if let Some(found) = check(&lines) {
                return found;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{} printed no {what} in {timeout:?}:\n{}",
                self.shown,
                lines.join("\n")
            );
            lines = self
                .lines
                .changed
                .wait_timeout(lines, (deadline - now).min(Duration::from_millis(200)))
                .unwrap()
                .0;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
