//! The real binary: environment variables, the startup line, signals, exit codes.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{PATIENCE, Process, Raw, get, post, wait_for};

#[tokio::test]
async fn root_reports_time_host_and_version_from_the_environment() {
    let hostbot = Process::start(&[("HOSTNAME", "hostbot-7d9f-abcde"), ("VERSION", "v1")]);
    let (status, body) = get(&hostbot.url("/")).await.unwrap();
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["time", "host", "version"]), "{body}");
    assert_eq!(json["host"], "hostbot-7d9f-abcde");
    assert_eq!(json["version"], "v1");
    let time = chrono::DateTime::parse_from_rfc3339(json["time"].as_str().unwrap()).unwrap();
    let skew = chrono::Utc::now()
        .signed_duration_since(time)
        .num_milliseconds()
        .abs();
    assert!(skew < 1000, "time {time} is {skew} ms off");
}

#[tokio::test]
async fn host_falls_back_to_the_system_hostname() {
    let hostbot = Process::start(&[]);
    let (_, body) = get(&hostbot.url("/")).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let system = hostname::get().unwrap().into_string().unwrap();
    assert_eq!(json["host"], system.as_str());
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn sigterm_fails_readiness_at_once_and_finishes_in_flight_requests() {
    let mut hostbot = Process::start(&[("DRAIN_DELAY", "400ms"), ("RESPONSE_DELAY", "1s")]);
    let ready = hostbot.url("/readyz");
    wait_for("ready", PATIENCE, || async {
        (get(&ready).await?.0 == 200).then_some(())
    })
    .await;

    // A slow request is in flight when the signal arrives.
    let slow = tokio::spawn(support::client().get(hostbot.url("/")).send());
    wait_for("the slow request to be in flight", PATIENCE, || async {
        let (_, metrics) = get(&hostbot.url("/metrics")).await?;
        metrics
            .contains("hostbot_http_requests_in_flight 2")
            .then_some(())
    })
    .await;
    let signalled = Instant::now();
    hostbot.signal("TERM");

    let (status, body) = wait_for("readiness to fail", PATIENCE, || async {
        get(&ready).await.filter(|(status, _)| *status == 503)
    })
    .await;
    assert!(
        signalled.elapsed() < Duration::from_millis(400),
        "readiness failed only after the drain delay"
    );
    assert_eq!((status, body.as_str()), (503, "not ready: shutting down\n"));

    // The in-flight request completes, told to close its connection.
    let response = slow.await.unwrap().expect("in-flight request answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["connection"], "close");

    let status = hostbot.exit(PATIENCE).await;
    assert_eq!(status.code(), Some(0), "{:?}", hostbot.output());
    // Not before the drain delay and the in-flight request.
    assert!(signalled.elapsed() >= Duration::from_millis(900));
    let output = hostbot.output().join("\n");
    assert!(output.contains("shutdown complete"), "{output}");
}

#[tokio::test]
async fn drain_closes_idle_keep_alive_connections() {
    let mut hostbot = Process::start(&[("DRAIN_DELAY", "200ms")]);
    let mut idle = Raw::connect(hostbot.addr).await;
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: hostbot\r\n\r\n")
        .await
        .unwrap();
    let first = idle.response().await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        !first.to_lowercase().contains("connection: close"),
        "{first}"
    );

    hostbot.signal("TERM");
    let took = idle.closed_within(PATIENCE).await;
    assert!(
        took >= Duration::from_millis(150),
        "closed before the drain delay ended ({took:?})"
    );
    assert_eq!(hostbot.exit(PATIENCE).await.code(), Some(0));
}

#[tokio::test]
async fn second_signal_exits_at_once_with_130() {
    let mut hostbot = Process::start(&[("DRAIN_DELAY", "60s")]);
    hostbot.signal("TERM");
    hostbot.wait_for_output("shutdown requested").await;
    let start = Instant::now();
    hostbot.signal("INT");
    assert_eq!(hostbot.exit(PATIENCE).await.code(), Some(130));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn ignore_sigterm_keeps_serving_until_killed() {
    let mut hostbot = Process::start(&[("IGNORE_SIGTERM", "true"), ("DRAIN_DELAY", "0s")]);
    hostbot.signal("TERM");
    hostbot
        .wait_for_output("ignoring the shutdown request")
        .await;
    assert_eq!(get(&hostbot.url("/readyz")).await.unwrap().0, 200);
    assert_eq!(get(&hostbot.url("/")).await.unwrap().0, 200);
    hostbot.signal("KILL");
    let status = hostbot.exit(PATIENCE).await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

#[tokio::test]
async fn slow_shutdown_delays_the_exit() {
    let mut hostbot = Process::start(&[("DRAIN_DELAY", "0s"), ("SLOW_SHUTDOWN", "500ms")]);
    let start = Instant::now();
    hostbot.signal("TERM");
    assert_eq!(hostbot.exit(PATIENCE).await.code(), Some(0));
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn crash_at_start_exits_with_the_crash_code() {
    let mut hostbot =
        match Process::try_start(&[("CRASH_AT_START", "1"), ("CRASH_EXIT_CODE", "42")]) {
            Ok(process) => process,
            Err((status, _)) => return assert_eq!(status.code(), Some(42)),
        };
    assert_eq!(hostbot.exit(PATIENCE).await.code(), Some(42));
}

#[tokio::test]
async fn crash_after_requests_drops_the_next_request_and_exits() {
    let mut hostbot = Process::start(&[("CRASH_AFTER_REQUESTS", "2"), ("CRASH_EXIT_CODE", "3")]);
    assert_eq!(get(&hostbot.url("/")).await.unwrap().0, 200);
    assert_eq!(get(&hostbot.url("/config")).await.unwrap().0, 200);
    assert_eq!(
        get(&hostbot.url("/healthz")).await.unwrap().0,
        200,
        "probes do not count"
    );
    assert_eq!(
        get(&hostbot.url("/")).await,
        None,
        "the crashing request gets no answer"
    );
    assert_eq!(hostbot.exit(PATIENCE).await.code(), Some(3));
}

#[tokio::test]
async fn crash_after_a_duration() {
    let start = Instant::now();
    let mut hostbot = Process::start(&[("CRASH_AFTER", "300ms")]);
    assert_eq!(hostbot.exit(PATIENCE).await.code(), Some(1));
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn taken_port_exits_nonzero_naming_the_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = match Process::try_start(&[("PORT", &port)]) {
        Ok(_) => panic!("hostbot started on a taken port"),
        Err(err) => err,
    };
    assert_eq!(err.0.code(), Some(1));
    let output = err.1.join("\n");
    assert!(
        output.contains(&format!("port {port} is already in use")),
        "{output}"
    );
    assert!(output.contains("PORT=8080"), "{output}");
}

#[tokio::test]
async fn healthcheck_flag_probes_a_running_instance() {
    let hostbot = Process::start(&[]);
    let healthcheck = |args: &[&str], port: &str| {
        Command::new(env!("CARGO_BIN_EXE_hostbot"))
            .arg("--healthcheck")
            .args(args)
            .env("HOST", "0.0.0.0")
            .env("PORT", port)
            .output()
            .unwrap()
    };
    let port = hostbot.addr.port().to_string();
    assert!(
        healthcheck(&[], &port).status.success(),
        "default URL from HOST/PORT"
    );
    assert!(
        healthcheck(&[&hostbot.url("/healthz")], "1")
            .status
            .success()
    );

    assert_eq!(post(&hostbot.url("/healthz/disable")).await, 200);
    let failed = healthcheck(&[], &port);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("status 503"), "{stderr}");
}

#[tokio::test]
async fn json_logs_and_access_log() {
    let hostbot = Process::start(&[("LOG_FORMAT", "json"), ("ACCESS_LOG", "true")]);
    get(&hostbot.url("/healthz")).await.unwrap();
    hostbot.wait_for_output("\"path\":\"/healthz\"").await;
    for line in hostbot.output() {
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(
            json["timestamp"].is_string() && json["level"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn help_documents_every_fault_knob() {
    let output = Command::new(env!("CARGO_BIN_EXE_hostbot"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for env in [
        "Fault injection",
        "SLOW_START",
        "NEVER_READY",
        "CRASH_AT_START",
        "CRASH_AFTER_REQUESTS",
        "CRASH_AFTER=",
        "CRASH_EXIT_CODE",
        "RESPONSE_DELAY",
        "RESPONSE_JITTER",
        "ERROR_RATE",
        "IGNORE_SIGTERM",
        "SLOW_SHUTDOWN",
        "DRAIN_DELAY",
        "SHUTDOWN_TIMEOUT",
        "HEADER_TIMEOUT",
        "IDLE_TIMEOUT",
        "CONFIG_DIR",
    ] {
        assert!(help.contains(env), "--help does not mention {env}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_hostbot"))
        .arg("--error-rate=2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid rate"));
}
