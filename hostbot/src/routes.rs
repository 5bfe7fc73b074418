//! What each path answers. [`App`] is the state of one instance (settings, health flags,
//! metrics, config snapshot, fault counters) and [`App::handle`] turns a request into a
//! response without knowing about sockets, so it is tested by calling it directly.
//!
//! | path | answer |
//! |------|--------|
//! | `GET /` | `{"time", "host", "version", "config"?}` (the tutorial's hostbot, plus version and config hash) |
//! | `GET /config` | the config directory as `{file: content}` |
//! | `GET /healthz` | liveness: 200, or 503 after `POST /healthz/disable` |
//! | `GET /readyz` | readiness: 503 while starting, disabled or shutting down |
//! | `POST /readyz/{enable,disable}`, `POST /healthz/{enable,disable}` | flip the toggles |
//! | `GET /metrics` | Prometheus text |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::SecondsFormat;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::faults::FaultState;
use crate::metrics::Metrics;
use crate::reload::ConfigSlot;

/// The error type `http_body_util::Limited` needs from a body.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Liveness and readiness of one instance. Readiness needs all three: started (slow start over),
/// not disabled by a toggle, not shutting down; shutting down cannot be undone by a toggle.
#[derive(Debug, Default)]
pub(crate) struct Health {
    started: AtomicBool,
    draining: AtomicBool,
    ready_disabled: AtomicBool,
    live_disabled: AtomicBool,
}

impl Health {
    pub(crate) fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// `Ok` when ready, else why not.
    pub(crate) fn readiness(&self) -> Result<(), &'static str> {
        if self.draining() {
            Err("shutting down")
        } else if !self.started.load(Ordering::Relaxed) {
            Err("starting")
        } else if self.ready_disabled.load(Ordering::Relaxed) {
            Err("disabled")
        } else {
            Ok(())
        }
    }
}

/// The state of one running instance, shared by its connections.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: Config,
    /// `,"host":"...","version":"..."`, the constant part of `GET /`.
    index_tail: String,
    pub(crate) health: Health,
    pub(crate) metrics: Metrics,
    pub(crate) snapshot: ConfigSlot,
    pub(crate) faults: FaultState,
    /// Cancelled by the request that trips "crash after N requests"; the server then stops.
    pub(crate) crash: CancellationToken,
}

/// What a request asks for, decided from the method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Index,
    Config,
    Healthz,
    Readyz,
    Metrics,
    /// `POST /readyz/{enable,disable}` (`readiness`) or `/healthz/...`.
    Toggle {
        readiness: bool,
        enable: bool,
    },
}

impl Route {
    /// The route for `method path`, or why there is none (404, 405).
    fn of(method: &Method, path: &str) -> Result<Route, Rejection> {
        let (route, post) = match path {
            "/" => (Route::Index, false),
            "/config" => (Route::Config, false),
            "/healthz" => (Route::Healthz, false),
            "/readyz" => (Route::Readyz, false),
            "/metrics" => (Route::Metrics, false),
            "/readyz/enable" | "/readyz/disable" | "/healthz/enable" | "/healthz/disable" => {
                let readiness = path.starts_with("/readyz");
                let enable = path.ends_with("/enable");
                (Route::Toggle { readiness, enable }, true)
            }
            _ => return Err(Rejection::NotFound),
        };
        let allowed = if post {
            method == Method::POST
        } else {
            method == Method::GET || method == Method::HEAD
        };
        match (allowed, post) {
            (true, _) => Ok(route),
            (false, true) => Err(Rejection::MethodNotAllowed { allow: "POST" }),
            (false, false) => Err(Rejection::MethodNotAllowed { allow: "GET, HEAD" }),
        }
    }
}

/// A request refused before it reaches its route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    NotFound,
    MethodNotAllowed { allow: &'static str },
    BodyTooLarge,
    BodyTimeout,
    BadBody(String),
}

impl Rejection {
    fn response(self) -> Response<Full<Bytes>> {
        let (status, message, header) = match &self {
            Rejection::NotFound => (StatusCode::NOT_FOUND, "not found", None),
            Rejection::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                Some((header::ALLOW, *allow)),
            ),
            // The unread rest of the body makes the connection unusable: say so.
            Rejection::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                Some((header::CONNECTION, "close")),
            ),
            Rejection::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request body timeout", None),
            Rejection::BadBody(reason) => (StatusCode::BAD_REQUEST, reason.as_str(), None),
        };
        let mut response = json_error(status, message);
        if let Some((name, value)) = header {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

impl App {
    pub(crate) fn new(config: Config) -> Self {
        // `host` and `version` never change: escape them once, not per request.
        let index_tail = format!(
            ",\"host\":{},\"version\":{}",
            serde_json::Value::from(config.hostname.as_str()),
            serde_json::Value::from(config.version.as_str()),
        );
        App {
            config,
            index_tail,
            health: Health::default(),
            metrics: Metrics::new(),
            snapshot: ConfigSlot::default(),
            faults: FaultState::default(),
            crash: CancellationToken::new(),
        }
    }

    /// Answers one request: routing, body limit, metrics, `Connection: close` while draining,
    /// and the access log.
    pub(crate) async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let in_flight = self.metrics.request_started();
        let access = self.config.access_log.then(|| {
            (
                Instant::now(),
                req.method().clone(),
                req.uri().path().to_owned(),
            )
        });

        let route = Route::of(req.method(), req.uri().path());
        let mut response = match route {
            Ok(route) => match self.drain_body(req).await {
                Ok(()) => self.route(route).await,
                Err(rejection) => rejection.response(),
            },
            Err(rejection) => rejection.response(),
        };

        if self.health.draining() {
            // Ask keep-alive clients to reconnect: through a Service that means another pod.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let status = response.status().as_u16();
        self.metrics.request_finished(status);
        drop(in_flight);
        if let Some((start, method, path)) = access {
            info!(
                target: "hostbot::access",
                %method,
                path,
                status,
                micros = start.elapsed().as_micros() as u64,
                %peer,
                "request"
            );
        }
        response
    }

    async fn route(&self, route: Route) -> Response<Full<Bytes>> {
        match route {
            Route::Index | Route::Config => self.app_route(route).await,
            Route::Healthz => {
                if self.health.live_disabled.load(Ordering::Relaxed) {
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        "unhealthy: disabled\n",
                    )
                } else {
                    respond(StatusCode::OK, TEXT, "ok\n")
                }
            }
            Route::Readyz => match self.health.readiness() {
                Ok(()) => respond(StatusCode::OK, TEXT, "ready\n"),
                Err(why) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("not ready: {why}\n"),
                ),
            },
            Route::Metrics => {
                let ready = self.health.readiness().is_ok();
                respond(StatusCode::OK, PROMETHEUS, self.metrics.render(ready))
            }
            Route::Toggle { readiness, enable } => {
                let (flag, what) = if readiness {
                    (&self.health.ready_disabled, "readiness")
                } else {
                    (&self.health.live_disabled, "liveness")
                };
                flag.store(!enable, Ordering::Relaxed);
                let state = if enable { "enabled" } else { "disabled" };
                info!("{what} {state} by request");
                respond(StatusCode::OK, TEXT, format!("{what} {state}\n"))
            }
        }
    }

    /// `/` and `/config`: the routes the fault knobs act on.
    async fn app_route(&self, route: Route) -> Response<Full<Bytes>> {
        let faults = &self.config.faults;
        if self.faults.count_request(faults) {
            self.crash.cancel();
            // Like a real crash, this request never gets an answer: the server drops it.
            std::future::pending::<()>().await;
        }
        let delay = faults.response_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if faults.inject_error() {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected fault (error rate)",
            );
        }
        let snapshot = self.snapshot.get();
        if route == Route::Config {
            return match serde_json::to_vec(&snapshot.files) {
                Ok(mut body) => {
                    body.push(b'\n');
                    respond(StatusCode::OK, JSON, body)
                }
                Err(err) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
            };
        }
        respond(
            StatusCode::OK,
            JSON,
            self.index_body(snapshot.hash.as_deref()),
        )
    }

    /// `{"time":...,"host":...,"version":...,"config":...}`, built by hand: this is the hot
    /// path, and only the time (and rarely the hash, plain hex) changes between requests.
    fn index_body(&self, config_hash: Option<&str>) -> Vec<u8> {
        let mut body = Vec::with_capacity(96 + self.index_tail.len());
        body.extend_from_slice(b"{\"time\":\"");
        write_rfc3339_micros(&mut body, &chrono::Local::now());
        body.push(b'"');
        body.extend_from_slice(self.index_tail.as_bytes());
        if let Some(hash) = config_hash {
            body.extend_from_slice(b",\"config\":\"");
            body.extend_from_slice(hash.as_bytes());
            body.push(b'"');
        }
        body.extend_from_slice(b"}\n");
        body
    }

    /// Reads and discards a request body, enforcing the size limit and a deadline (the header
    /// timeout: a body trickling in is a slowloris too). No route uses a body, but reading it
    /// keeps the connection reusable.
    async fn drain_body<B>(&self, req: Request<B>) -> Result<(), Rejection>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let limit = self.config.max_body_size;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(Rejection::BodyTooLarge);
        }
        let body = req.into_body();
        if body.is_end_stream() {
            return Ok(());
        }
        let collect = Limited::new(body, limit).collect();
        match tokio::time::timeout(self.config.header_timeout, collect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) if err.is::<LengthLimitError>() => Err(Rejection::BodyTooLarge),
            Ok(Err(err)) => Err(Rejection::BadBody(format!("reading request body: {err}"))),
            Err(_) => Err(Rejection::BodyTimeout),
        }
    }
}

/// Appends `now` as RFC 3339 with microseconds and a numeric offset
/// (`2026-11-22T09:00:00.123456+09:00`), the same text as chrono's
/// `to_rfc3339_opts(SecondsFormat::Micros, false)` without its allocation and generic formatting.
fn write_rfc3339_micros<Tz: chrono::TimeZone>(out: &mut Vec<u8>, now: &chrono::DateTime<Tz>) {
    use chrono::{Datelike as _, Offset as _, Timelike as _};
    let local = now.naive_local();
    let year = local.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(now.to_rfc3339_opts(SecondsFormat::Micros, false).as_bytes());
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, local.month(), 2);
    out.push(b'-');
    digits(out, local.day(), 2);
    out.push(b'T');
    digits(out, local.hour(), 2);
    out.push(b':');
    digits(out, local.minute(), 2);
    out.push(b':');
    digits(out, local.second(), 2);
    out.push(b'.');
    // A leap second shows as nanoseconds >= 1e9; chrono prints it as second 60, we clamp.
    digits(out, (local.nanosecond() / 1000).min(999_999), 6);
    let offset = now.offset().fix().local_minus_utc();
    out.push(if offset < 0 { b'-' } else { b'+' });
    let minutes = offset.unsigned_abs() / 60;
    digits(out, minutes / 60, 2);
    out.push(b':');
    digits(out, minutes % 60, 2);
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut body = serde_json::json!({ "error": message }).to_string();
    body.push('\n');
    respond(status, JSON, body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::Empty;
    use hyper::body::Frame;

    use super::*;
    use crate::faults::Faults;

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    fn app(config: Config) -> App {
        let app = App::new(config);
        app.health.set_started();
        app
    }

    fn get(path: &str) -> Request<Empty<Bytes>> {
        Request::get(path).body(Empty::new()).unwrap()
    }

    fn post(path: &str) -> Request<Empty<Bytes>> {
        Request::post(path).body(Empty::new()).unwrap()
    }

    async fn call<B>(app: &App, req: Request<B>) -> (StatusCode, String)
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let response = app.handle(req, PEER).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn index_has_time_host_version_and_no_config_when_empty() {
        let app = app(Config {
            hostname: "hostbot-7d9f".into(),
            version: "v1".into(),
            ..Config::default()
        });
        let response = app.handle(get("/"), PEER).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["host"], "hostbot-7d9f");
        assert_eq!(json["version"], "v1");
        assert!(json.get("config").is_none(), "{json}");
        let time = chrono::DateTime::parse_from_rfc3339(json["time"].as_str().unwrap()).unwrap();
        let skew = chrono::Utc::now()
            .signed_duration_since(time)
            .num_milliseconds()
            .abs();
        assert!(skew < 1000, "time is {skew} ms off");
        let text = json["time"].as_str().unwrap();
        assert!(
            text.contains('.')
                && (text.ends_with(":00") || text.contains('+') || text.contains('-'))
        );
    }

    #[test]
    fn time_format_matches_chrono() {
        use chrono::{FixedOffset, TimeZone as _};
        let cases = [
            (0, 0, 0),
            (9 * 3600, 1_795_307_933, 123_456_789),
            (-(3 * 3600 + 30 * 60), 1_795_307_933, 999_999_999),
            (5 * 3600 + 45 * 60, 951_782_400, 1_000),
            (0, 253_402_300_799, 500_000_000),
        ];
        for (offset, secs, nanos) in cases {
            let zone = FixedOffset::east_opt(offset).unwrap();
            let time = zone.timestamp_opt(secs, nanos).unwrap();
            let mut ours = Vec::new();
            write_rfc3339_micros(&mut ours, &time);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                time.to_rfc3339_opts(SecondsFormat::Micros, false)
            );
        }
    }

    #[tokio::test]
    async fn index_escapes_host_and_version_and_adds_the_config_hash() {
        let app = app(Config {
            hostname: "odd \"host\"\\".into(),
            version: "v\n1".into(),
            ..Config::default()
        });
        let body = app.index_body(Some("0123456789ab"));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["host"], "odd \"host\"\\");
        assert_eq!(json["version"], "v\n1");
        assert_eq!(json["config"], "0123456789ab");
        assert_eq!(body.last(), Some(&b'\n'));
    }

    #[tokio::test]
    async fn readiness_follows_start_toggle_and_drain() {
        let app = App::new(Config::default());
        assert_eq!(
            call(&app, get("/readyz")).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: starting\n".into()
            )
        );
        app.health.set_started();
        assert_eq!(call(&app, get("/readyz")).await.0, StatusCode::OK);
        assert_eq!(call(&app, post("/readyz/disable")).await.0, StatusCode::OK);
        assert_eq!(call(&app, get("/readyz")).await.1, "not ready: disabled\n");
        call(&app, post("/readyz/enable")).await;
        assert_eq!(call(&app, get("/readyz")).await.0, StatusCode::OK);
        app.health.set_draining();
        call(&app, post("/readyz/enable")).await;
        assert_eq!(
            call(&app, get("/readyz")).await.1,
            "not ready: shutting down\n"
        );
    }

    #[tokio::test]
    async fn liveness_toggle() {
        let app = app(Config::default());
        assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
        call(&app, post("/healthz/disable")).await;
        assert_eq!(
            call(&app, get("/healthz")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        call(&app, post("/healthz/enable")).await;
        assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn draining_answers_carry_connection_close() {
        let app = app(Config::default());
        assert!(
            !app.handle(get("/"), PEER)
                .await
                .headers()
                .contains_key(header::CONNECTION)
        );
        app.health.set_draining();
        let response = app.handle(get("/"), PEER).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn unknown_paths_and_wrong_methods() {
        let app = app(Config::default());
        assert_eq!(call(&app, get("/nope")).await.0, StatusCode::NOT_FOUND);
        let response = app.handle(post("/"), PEER).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        let response = app.handle(get("/readyz/disable"), PEER).await;
        assert_eq!(response.headers()[header::ALLOW], "POST");
        assert_eq!(
            call(
                &app,
                Request::head("/").body(Empty::<Bytes>::new()).unwrap()
            )
            .await
            .0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn body_limit_by_header_and_by_stream() {
        let app = app(Config {
            max_body_size: 10,
            ..Config::default()
        });
        let small = Request::post("/readyz/enable")
            .body(Full::new(Bytes::from("0123456789")))
            .unwrap();
        assert_eq!(call(&app, small).await.0, StatusCode::OK);
        let declared = Request::post("/readyz/enable")
            .header(header::CONTENT_LENGTH, "11")
            .body(Full::new(Bytes::from("01234567890")))
            .unwrap();
        let response = app.handle(declared, PEER).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        // Chunked: no length up front, the limit trips while reading.
        let chunks = Chunks((0..3).map(|_| Bytes::from("0123456")).collect());
        let streamed = Request::post("/readyz/enable").body(chunks).unwrap();
        assert_eq!(call(&app, streamed).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// A body of several data frames without a known length, like a chunked upload.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    #[tokio::test]
    async fn config_route_and_hash() {
        let app = app(Config::default());
        assert_eq!(
            call(&app, get("/config")).await,
            (StatusCode::OK, "{}\n".into())
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greeting"), "hello").unwrap();
        app.snapshot
            .set(crate::reload::read_dir(dir.path()).unwrap());
        assert_eq!(
            call(&app, get("/config")).await.1,
            "{\"greeting\":\"hello\"}\n"
        );
        let (_, body) = call(&app, get("/")).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["config"].as_str().map(str::len), Some(12));
    }

    #[tokio::test]
    async fn error_rate_applies_to_app_routes_only() {
        let app = app(Config {
            faults: Faults {
                error_rate: 1.0,
                ..Faults::default()
            },
            ..Config::default()
        });
        assert_eq!(
            call(&app, get("/")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            call(&app, get("/config")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(call(&app, get("/metrics")).await.0, StatusCode::OK);
        let (_, metrics) = call(&app, get("/metrics")).await;
        assert!(
            metrics.contains("hostbot_http_requests_total{code=\"500\"} 2"),
            "{metrics}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn response_delay_applies_to_app_routes_only() {
        let app = app(Config {
            faults: Faults {
                response_delay: Duration::from_secs(3),
                ..Faults::default()
            },
            ..Config::default()
        });
        let start = tokio::time::Instant::now();
        call(&app, get("/healthz")).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        call(&app, get("/")).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn crash_after_requests_trips_on_the_next_one() {
        let app = app(Config {
            faults: Faults {
                crash_after_requests: Some(2),
                ..Faults::default()
            },
            ..Config::default()
        });
        call(&app, get("/")).await;
        call(&app, get("/config")).await;
        call(&app, get("/healthz")).await; // probes do not count
        assert!(!app.crash.is_cancelled());
        let third =
            tokio::time::timeout(Duration::from_millis(50), app.handle(get("/"), PEER)).await;
        assert!(third.is_err(), "the crashing request must not be answered");
        assert!(app.crash.is_cancelled());
    }
}
