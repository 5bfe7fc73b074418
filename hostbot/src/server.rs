//! The server behind [`run`]: accept loops (one per runtime worker, so that accepting is not a
//! one-thread bottleneck), one task per connection with its own timeouts, and the shutdown
//! sequence. Everything shared lives in one [`Shared`] per instance; stop signals are atomic
//! flags ([`Flag`]) because a cancellation token's `is_cancelled` takes a mutex.
//!
//! [`run`] serves on the caller's runtime; the command line uses [`run_on`] with
//! [`Listeners::PerRuntime`] to serve on its thread-per-core workers instead (see `workers`).
//!
//! # Shutdown
//!
//! Cancelling the `shutdown` token (the command line does it on SIGTERM or SIGINT) starts the
//! drain, which is what a pod behind a Service needs to lose no request:
//!
//! 1. readiness answers 503 at once, and every answer carries `Connection: close` so that
//!    keep-alive clients reconnect (through the Service, to another pod);
//! 2. for [`Config::drain_delay`] the server keeps accepting and serving, because endpoint
//!    removal races the SIGTERM and traffic keeps arriving for a moment;
//! 3. the listener closes; idle connections are closed, in-flight requests finish and their
//!    answers carry `Connection: close` (hyper's `graceful_shutdown`);
//! 4. when every connection is gone [`run`] returns `Ok`; after [`Config::shutdown_timeout`] the
//!    rest are cut and it returns [`Error::ShutdownTimeout`].
//!
//! Cancelling the `force` token ([`run_with_force`]) at any point cuts all connections and
//! returns [`Error::Forced`]; dropping the future of [`run`] does the same silently, like SIGKILL.
//! Every task [`run`] starts is tracked and ends with it.
//!
//! # Connection timeouts
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its next
//! request, so it cannot be set apart from an idle timeout. Each connection therefore gets a
//! small clock ([`ConnClock`]) that the socket wrapper and the service update (waiting for a
//! request head, busy, idle) and one timer that checks it lazily: a head must arrive within
//! [`Config::header_timeout`] (slowloris), an idle keep-alive connection is closed after
//! [`Config::idle_timeout`], a busy one is never cut. The timer is only re-armed when it fires,
//! so the request path never touches the timer wheel.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::config::Config;
use crate::error::Error;
use crate::reload;
use crate::routes::App;

/// Serves `listener` until `shutdown` is cancelled, then drains gracefully (see the module
/// docs) and returns. Equivalent to [`run_with_force`] with a token that is never cancelled.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_with_force(listener, config, shutdown, CancellationToken::new()).await
}

/// Like [`run`]; cancelling `force` ends the instance at once (the second signal), returning
/// [`Error::Forced`].
pub async fn run_with_force(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    force: CancellationToken,
) -> Result<(), Error> {
    run_on(Listeners::Single(listener), config, shutdown, force).await
}

/// The listening sockets of an instance, and where each one's accept loop runs.
pub(crate) enum Listeners {
    /// One listener on the caller's runtime, with one accept loop per runtime worker so that
    /// accepting is not a one-thread bottleneck when every request brings a new connection.
    Single(TcpListener),
    /// One listener per runtime, each registered with that runtime's reactor (the binary's
    /// thread-per-core [`Workers`] and their `SO_REUSEPORT` sockets): each accept loop, and
    /// every connection it accepts, stays on its runtime. The shutdown sequence and the
    /// reloader run on the caller's runtime.
    ///
    /// [`Workers`]: crate::workers::Workers
    PerRuntime(Vec<(Handle, TcpListener)>),
}

/// [`run_with_force`] on `listeners`.
pub(crate) async fn run_on(
    listeners: Listeners,
    config: Config,
    shutdown: CancellationToken,
    force: CancellationToken,
) -> Result<(), Error> {
    let listeners = match listeners {
        Listeners::Single(listener) => {
            let workers = Handle::current().metrics().num_workers().max(1);
            vec![(Handle::current(), Arc::new(listener)); workers]
        }
        Listeners::PerRuntime(listeners) => listeners
            .into_iter()
            .map(|(runtime, listener)| (runtime, Arc::new(listener)))
            .collect(),
    };
    let Some((_, first)) = listeners.first() else {
        return Err(Error::Listener(io::Error::other("no listener")));
    };
    let addr = first.local_addr().map_err(Error::Listener)?;
    let span = info_span!("hostbot", host = %config.hostname);
    Server::new(addr, config)
        .serve(listeners, shutdown, force)
        .instrument(span)
        .await
}

struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The background tasks: connections and the config reloader.
    tracker: TaskTracker,
    /// The accept loops, tracked apart so that "the listener is closed" can be awaited.
    acceptors: TaskTracker,
    started: Instant,
}

/// What every task of one instance needs.
struct Shared {
    app: Arc<App>,
    http: http1::Builder,
    /// Raised after the drain delay: accept loops stop and the listener closes.
    stop_accepting: Flag,
    /// Raised when the listener is closed: connections shut down gracefully.
    drain: Flag,
    /// Raised when `serve` ends for any reason (also when its future is dropped): connections
    /// and background tasks stop at once.
    kill: Flag,
}

/// A one-way stop signal, checked by every connection on every poll. The state is an atomic
/// because `CancellationToken::is_cancelled` locks a mutex shared by all clones, which would
/// put a contended lock on the request path; the token only delivers the wake-up.
#[derive(Debug, Default)]
struct Flag {
    raised: AtomicBool,
    token: CancellationToken,
}

impl Flag {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.token.cancel();
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }
}

impl Shared {
    /// Stops everything at once: the SIGKILL path.
    fn kill(&self) {
        self.kill.raise();
        self.drain.raise();
        self.stop_accepting.raise();
    }
}

/// Kills the instance's tasks when `serve` returns or its future is dropped.
struct KillOnDrop(Arc<Shared>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

impl Server {
    fn new(addr: SocketAddr, config: Config) -> Self {
        let mut http = http1::Builder::new();
        http.keep_alive(true)
            .max_header_size(config.max_header_size)
            // Our own clock enforces the header timeout; see the module docs.
            .header_read_timeout(None);
        Server {
            addr,
            shared: Arc::new(Shared {
                app: Arc::new(App::new(config)),
                http,
                stop_accepting: Flag::default(),
                drain: Flag::default(),
                kill: Flag::default(),
            }),
            tracker: TaskTracker::new(),
            acceptors: TaskTracker::new(),
            started: Instant::now(),
        }
    }

    /// Runs the instance with one accept loop per entry of `listeners`, each on its runtime.
    async fn serve(
        self,
        listeners: Vec<(Handle, Arc<TcpListener>)>,
        shutdown: CancellationToken,
        force: CancellationToken,
    ) -> Result<(), Error> {
        let _kill_on_exit = KillOnDrop(Arc::clone(&self.shared));
        let app = &self.shared.app;
        let config = &app.config;
        let faults = &config.faults;

        if let Some(dir) = config.config_dir.clone() {
            match reload::read_dir(&dir) {
                Ok(snapshot) => app.snapshot.set(snapshot),
                Err(err) => warn!(error = %err, "config not loaded, starting without"),
            }
            let shared = Arc::clone(&self.shared);
            self.tracker.spawn(async move {
                let app = &*shared.app;
                let stop = shared.drain.token.clone();
                reload::follow(
                    dir,
                    app.config.config_poll_interval,
                    &app.snapshot,
                    &app.metrics,
                    stop,
                )
                .await;
            });
        }
        if faults.any() {
            warn!(?faults, "fault injection is active");
        }
        info!("listening on http://{}", self.addr);
        if faults.crash_at_start {
            return Err(self.crash("at start".to_owned()));
        }

        for (runtime, listener) in listeners {
            let accepting = accept_loop(listener, Arc::clone(&self.shared), self.tracker.clone());
            self.acceptors.spawn_on(accepting, &runtime);
        }
        self.acceptors.close();

        // Serving: until a shutdown request that is not ignored.
        let mut interrupted = pin!(self.interrupted(&force));
        let mut shutdown_requested = pin!(shutdown.cancelled());
        let mut starting = pin!(tokio::time::sleep(faults.slow_start));
        let mut started = false;
        let mut ignoring = false;
        loop {
            tokio::select! {
                biased;
                err = &mut interrupted => return Err(err),
                () = &mut starting, if !started => {
                    started = true;
                    if faults.never_ready {
                        warn!("never becoming ready (fault never-ready)");
                    } else {
                        app.health.set_started();
                        info!("ready");
                    }
                }
                () = &mut shutdown_requested, if !ignoring => {
                    if !faults.ignore_sigterm {
                        break;
                    }
                    warn!("ignoring the shutdown request (fault ignore-sigterm)");
                    ignoring = true;
                }
            }
        }

        // Draining: not ready, `Connection: close` on every answer, still accepting.
        app.health.set_draining();
        info!(
            "shutdown requested: readiness off, serving {:?} more before closing the listener",
            config.drain_delay
        );
        tokio::select! {
            biased;
            err = &mut interrupted => return Err(err),
            () = tokio::time::sleep(config.drain_delay) => {}
        }

        // Closing: no new connections; idle ones close, in-flight requests finish.
        self.shared.stop_accepting.raise();
        tokio::select! {
            biased;
            err = &mut interrupted => return Err(err),
            () = self.acceptors.wait() => {}
        }
        self.shared.drain.raise();
        self.tracker.close();
        let open = app.metrics.connections_open();
        info!(open, "listener closed, waiting for in-flight requests");
        tokio::select! {
            biased;
            err = &mut interrupted => return Err(err),
            () = self.tracker.wait() => {}
            () = tokio::time::sleep(config.shutdown_timeout) => {
                let open = app.metrics.connections_open();
                warn!(open, "shutdown timeout: cutting the remaining connections");
                self.shared.kill();
                self.tracker.wait().await;
                return Err(Error::ShutdownTimeout { open, timeout: config.shutdown_timeout });
            }
        }

        if !faults.slow_shutdown.is_zero() {
            warn!(delay = ?faults.slow_shutdown, "slowing down shutdown (fault slow-shutdown)");
            tokio::select! {
                err = &mut interrupted => return Err(err),
                () = tokio::time::sleep(faults.slow_shutdown) => {}
            }
        }
        info!("shutdown complete");
        Ok(())
    }

    /// Resolves when the instance must stop at once: forced, or a crash fault fired.
    async fn interrupted(&self, force: &CancellationToken) -> Error {
        let faults = &self.shared.app.config.faults;
        let crash_timer = async {
            match faults.crash_after {
                Some(after) => tokio::time::sleep_until(self.started + after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = force.cancelled() => {
                warn!("forced shutdown");
                Error::Forced
            }
            () = self.shared.app.crash.cancelled() => {
                let served = faults.crash_after_requests.unwrap_or_default();
                self.crash(format!("after {served} requests"))
            }
            () = crash_timer => self.crash(format!("after {:?}", faults.crash_after.unwrap_or_default())),
        }
    }

    fn crash(&self, reason: String) -> Error {
        let code = self.shared.app.config.faults.crash_exit_code;
        warn!(code, "crashing {reason} (fault)");
        Error::Crash { code, reason }
    }
}

/// Accepts connections until `stop_accepting` is raised, spawning one task per connection.
/// The listener closes when the last accept loop drops its handle.
async fn accept_loop(listener: Arc<TcpListener>, shared: Arc<Shared>, tracker: TaskTracker) {
    let mut stop = pin!(shared.stop_accepting.token.cancelled());
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Small answers: do not wait for Nagle.
                let _ = stream.set_nodelay(true);
                tracker.spawn(connection(stream, peer, Arc::clone(&shared)));
            }
            Err(err) => {
                // Out of file descriptors or similar: back off instead of spinning.
                warn!(error = %err, "accept failed");
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Serves one connection until the client closes it, a timeout fires, the drain closes it, or
/// the instance is killed.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let app = &shared.app;
    let _open = app.metrics.connection_opened();
    let header_timeout = app.config.header_timeout;
    let idle_timeout = app.config.idle_timeout;
    // One allocation per connection, shared by the socket wrapper and the service; cloning it
    // per request touches only this connection's reference count, not the instance's.
    let conn_state = Arc::new(Conn {
        app: Arc::clone(app),
        clock: ConnClock::new(),
    });
    let clock = &conn_state.clock;
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: Arc::clone(&conn_state),
    });
    let service = {
        let conn_state = Arc::clone(&conn_state);
        service_fn(move |req| {
            let conn_state = Arc::clone(&conn_state);
            async move {
                conn_state.clock.set(Phase::Busy);
                let response = conn_state.app.handle(req, peer).await;
                conn_state.clock.set(Phase::Idle);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut conn = pin!(shared.http.serve_connection(io, service));
    let mut drained = pin!(shared.drain.token.cancelled());
    let mut killed = pin!(shared.kill.token.cancelled());
    let check_every = header_timeout
        .min(idle_timeout)
        .max(Duration::from_millis(1));
    let mut timer = pin!(tokio::time::sleep(check_every));
    let mut registered = false;
    let mut closing = false;

    let end = poll_fn(|cx| {
        if !registered {
            // Register this task's waker with both tokens once; afterwards a cheap flag check
            // suffices, since the registered waker wakes this same task on cancellation.
            registered = true;
            let _ = drained.as_mut().poll(cx);
            let _ = killed.as_mut().poll(cx);
        }
        loop {
            if shared.kill.is_raised() {
                return Poll::Ready(End::Killed);
            }
            if !closing && shared.drain.is_raised() {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(End::Closed(result));
            }
            ready!(timer.as_mut().poll(cx));
            let now = Instant::now();
            match clock.check(now, header_timeout, idle_timeout) {
                Check::HeaderExpired => return Poll::Ready(End::HeaderTimeout),
                Check::IdleExpired if closing => return Poll::Ready(End::IdleTimeout),
                Check::IdleExpired => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    timer.as_mut().reset(now + check_every);
                }
                Check::Next(at) => timer.as_mut().reset(at.min(now + check_every)),
            }
        }
    })
    .await;
    match end {
        End::Closed(Ok(())) | End::Killed => {}
        End::Closed(Err(err)) => debug!(%peer, error = %err, "connection error"),
        End::HeaderTimeout => {
            debug!(%peer, timeout = ?header_timeout, "request head not received in time, closing")
        }
        End::IdleTimeout => {
            debug!(%peer, timeout = ?idle_timeout, "idle connection did not close, cutting")
        }
    }
}

enum End {
    Closed(Result<(), hyper::Error>),
    HeaderTimeout,
    IdleTimeout,
    Killed,
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum Phase {
    /// Waiting for (the rest of) a request head: the header timeout applies.
    Head = 0,
    /// A request is being handled: no timeout applies.
    Busy = 1,
    /// Between requests on a keep-alive connection: the idle timeout applies.
    Idle = 2,
}

enum Check {
    HeaderExpired,
    IdleExpired,
    /// Nothing expired; look again at this instant.
    Next(Instant),
}

/// The phase of one connection and when it began, packed into one atomic (milliseconds since
/// the connection was accepted, shifted left by two, plus the phase). Written by the socket
/// wrapper and the service, read by the connection's timer; all run in the connection's task.
#[derive(Debug)]
struct ConnClock {
    epoch: Instant,
    state: AtomicU64,
}

impl ConnClock {
    /// A new connection waits for its first request head.
    fn new() -> Self {
        ConnClock {
            epoch: Instant::now(),
            state: AtomicU64::new(Phase::Head as u64),
        }
    }

    fn set(&self, phase: Phase) {
        let millis = if phase == Phase::Busy {
            0 // a busy connection has no deadline, so its start does not matter
        } else {
            self.epoch.elapsed().as_millis() as u64
        };
        self.state
            .store(millis << 2 | phase as u64, Ordering::Relaxed);
    }

    fn phase(&self) -> Phase {
        match self.state.load(Ordering::Relaxed) & 3 {
            0 => Phase::Head,
            1 => Phase::Busy,
            _ => Phase::Idle,
        }
    }

    fn check(&self, now: Instant, header_timeout: Duration, idle_timeout: Duration) -> Check {
        let state = self.state.load(Ordering::Relaxed);
        let since = self.epoch + Duration::from_millis(state >> 2);
        let (limit, expired) = match self.phase() {
            Phase::Busy => return Check::Next(now + header_timeout.min(idle_timeout)),
            Phase::Head => (header_timeout, Check::HeaderExpired),
            Phase::Idle => (idle_timeout, Check::IdleExpired),
        };
        if now >= since + limit {
            expired
        } else {
            Check::Next(since + limit)
        }
    }
}

/// What one connection's socket wrapper and service share.
struct Conn {
    app: Arc<App>,
    clock: ConnClock,
}

/// The client socket, reporting the first bytes of each new request to the [`ConnClock`].
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let clock = &self.conn.clock;
        if buf.filled().len() > before && clock.phase() == Phase::Idle {
            clock.set(Phase::Head);
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// hyper shuts the write side down just before it drops the connection; the `close(2)` of
    /// the drop sends the same FIN, so the extra `shutdown(2)` per connection is skipped.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;
    use crate::workers::Workers;

    /// One `GET /healthz` on `stream` with blocking I/O; the answer's status line.
    fn blocking_get(stream: &mut std::net::TcpStream) -> String {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = [0; 512];
        let read = stream.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        answer.lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn workers_serve_and_drain_then_every_listener_is_closed() {
        let workers = Workers::start(2).unwrap();
        let listeners = workers.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listeners[0].1.local_addr().unwrap();
        let config = Config {
            config_dir: None,
            drain_delay: Duration::ZERO,
            ..Config::default()
        };
        let shutdown = CancellationToken::new();
        let run = run_on(
            Listeners::PerRuntime(listeners),
            config,
            shutdown.clone(),
            CancellationToken::new(),
        );
        let client = async {
            // Blocking I/O on the test's single thread: only the workers can answer.
            let connect = || {
                let stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                stream
            };
            for _ in 0..8 {
                assert_eq!(blocking_get(&mut connect()), "HTTP/1.1 200 OK");
            }
            let mut idle = connect();
            assert_eq!(blocking_get(&mut idle), "HTTP/1.1 200 OK");
            shutdown.cancel();
            idle
        };
        // `join!` polls `run` first, which spawns the accept loops before the client blocks.
        let (result, mut idle) = tokio::join!(run, client);
        result.unwrap();
        assert_eq!(idle.read(&mut [0; 16]).unwrap(), 0, "the drain closed it");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no worker holds a listener open"
        );
    }

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(75);

    #[tokio::test(start_paused = true)]
    async fn clock_applies_the_timeout_of_each_phase() {
        let clock = ConnClock::new();
        let t0 = clock.epoch;
        assert!(matches!(clock.check(t0, HEADER, IDLE), Check::Next(at) if at == t0 + HEADER));
        assert!(matches!(
            clock.check(t0 + HEADER, HEADER, IDLE),
            Check::HeaderExpired
        ));

        tokio::time::advance(Duration::from_secs(1)).await;
        clock.set(Phase::Busy);
        let late = t0 + Duration::from_secs(3600);
        assert!(matches!(clock.check(late, HEADER, IDLE), Check::Next(at) if at == late + HEADER));

        tokio::time::advance(Duration::from_secs(1)).await;
        clock.set(Phase::Idle);
        let idle_since = t0 + Duration::from_secs(2);
        assert!(
            matches!(clock.check(idle_since + HEADER, HEADER, IDLE), Check::Next(at) if at == idle_since + IDLE)
        );
        assert!(matches!(
            clock.check(idle_since + IDLE, HEADER, IDLE),
            Check::IdleExpired
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn first_byte_after_idle_starts_the_header_timeout() {
        let clock = ConnClock::new();
        clock.set(Phase::Idle);
        tokio::time::advance(Duration::from_secs(30)).await;
        // What `Tracked::poll_read` does when bytes arrive on an idle connection.
        if clock.phase() == Phase::Idle {
            clock.set(Phase::Head);
        }
        let head_since = clock.epoch + Duration::from_secs(30);
        assert_eq!(clock.phase(), Phase::Head);
        assert!(
            matches!(clock.check(head_since, HEADER, IDLE), Check::Next(at) if at == head_since + HEADER)
        );
    }
}
