//! The spawner thread: every container process is forked from one long-lived thread.
//!
//! Children ask the kernel for `PR_SET_PDEATHSIG(SIGKILL)`, so that they die with the harness
//! even when it is SIGKILLed. The kernel sends that signal when the *thread* that forked the
//! child exits, not the process: forking from Tokio's blocking pool (whose idle threads retire
//! after ten seconds) would kill healthy pods at random. This thread is started once per
//! process and never exits, so the signal fires exactly when the harness dies.

use std::io;
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

struct Request {
    command: Command,
    /// The runtime the child's I/O and exit notification belong to.
    runtime: Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

fn thread() -> &'static mpsc::Sender<Request> {
    static SENDER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for mut request in receiver {
                    let _runtime = request.runtime.enter();
                    let _ = request.reply.send(request.command.spawn());
                }
            })
            .expect("the spawner thread starts");
        sender
    })
}

/// Spawns `command` from the spawner thread. Must be called inside a Tokio runtime, which
/// will own the child.
pub async fn spawn(command: Command) -> io::Result<Child> {
    let (reply, answer) = oneshot::channel();
    let request = Request {
        command,
        runtime: Handle::current(),
        reply,
    };
    thread()
        .send(request)
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}
