//! [`Workers`]: the command line's thread-per-core serving threads, each running its own
//! current-thread Tokio runtime.
//!
//! A multi-thread runtime shares one run queue and lets idle workers steal tasks; every
//! connection task may wake up on either core, and workers wake each other through futexes.
//! nginx instead runs one independent event loop per core. hostbot's binary does the same: each
//! worker thread accepts on its own listener ([`Workers::bind`]) and serves the connections it
//! accepted from start to end, so a request never crosses threads. The main thread keeps a
//! small runtime of its own for what is not per connection: signals, the shutdown sequence,
//! the config reloader.
//!
//! Library callers ([`run`](crate::run)) keep serving on their own runtime: the harness hosts
//! hundreds of instances in one process, where a thread per core per instance would be absurd.

use std::io;
use std::net::SocketAddr;
use std::thread;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Accept queue length of each listener, as `TcpListener::bind` uses.
const BACKLOG: u32 = 1024;

/// Serving threads, one current-thread runtime each; they stop when this is dropped.
#[derive(Debug)]
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Dropping a sender ends its thread's runtime (and with it every task left on it).
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` threads (at least one), named `hostbot-worker-N`.
    pub(crate) fn start(count: usize) -> io::Result<Self> {
        let mut workers = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            let thread = thread::Builder::new()
                .name(format!("hostbot-worker-{index}"))
                .spawn(move || {
                    // Tasks spawned through the handle run only while the runtime is driven.
                    let _ = runtime.block_on(stopped);
                })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Binds one listener per worker on `addr` (with port 0, the port the first one gets),
    /// each registered with its worker's reactor.
    ///
    /// They are `SO_REUSEPORT` sockets, so the kernel spreads new connections over their accept
    /// queues by a hash of the client's address: each connection wakes one thread, and
    /// keep-alive connections end up evenly spread. One listener shared by all workers wakes
    /// every thread for each new connection, and the first one awake often accepts a whole
    /// burst, leaving the others idle.
    ///
    /// `SO_REUSEPORT` would also let a second hostbot of the same user bind a port the first
    /// one holds and silently take half its connections. A port given by number is therefore
    /// first bound by a plain socket, which fails with "address in use" when anything holds it,
    /// reuse-port group or not, and is released before the group binds.
    pub(crate) fn bind(&self, addr: SocketAddr) -> io::Result<Vec<(Handle, TcpListener)>> {
        if addr.port() != 0 {
            drop(std::net::TcpListener::bind(addr)?);
        }
        let mut addr = addr;
        let mut listeners = Vec::with_capacity(self.handles.len());
        for handle in &self.handles {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            // As `TcpListener::bind` does: rebinding is not blocked by old connections.
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            let _in_worker = handle.enter();
            let listener = socket.listen(BACKLOG)?;
            addr = listener.local_addr()?;
            listeners.push((handle.clone(), listener));
        }
        Ok(listeners)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stops.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_their_own_worker_thread() {
        let workers = Workers::start(2).unwrap();
        let names: Vec<String> = workers
            .handles
            .iter()
            .map(|handle| {
                let (tx, rx) = std::sync::mpsc::channel();
                handle.spawn(async move {
                    let name = thread::current().name().unwrap_or_default().to_owned();
                    tx.send(name).unwrap();
                });
                rx.recv().unwrap()
            })
            .collect();
        assert_eq!(names, ["hostbot-worker-0", "hostbot-worker-1"]);
    }

    #[test]
    fn bind_gives_each_worker_a_listener_on_the_same_port() {
        let workers = Workers::start(3).unwrap();
        let listeners = workers.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|(_, listener)| listener.local_addr().unwrap())
            .collect();
        assert_ne!(addrs[0].port(), 0);
        assert_eq!(addrs, [addrs[0]; 3]);
        let plain = std::net::TcpListener::bind(addrs[0]);
        assert_eq!(
            plain.unwrap_err().kind(),
            io::ErrorKind::AddrInUse,
            "a socket without SO_REUSEPORT cannot join"
        );
    }

    #[test]
    fn a_second_group_cannot_share_the_port() {
        let first = Workers::start(2).unwrap();
        let held = first.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = held[0].1.local_addr().unwrap();
        let second = Workers::start(2).unwrap();
        let err = second.bind(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn bind_fails_on_a_taken_port() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let workers = Workers::start(2).unwrap();
        let err = workers.bind(taken.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn dropping_stops_the_threads_and_their_tasks() {
        let workers = Workers::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A task that never ends holds the sender; dropping the runtime drops the task.
        workers.handles[0].spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert!(rx.recv().is_err(), "the task was dropped with its runtime");
    }
}
