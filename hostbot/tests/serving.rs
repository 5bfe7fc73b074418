//! `hostbot::run` in-process: faults, connection hardening, shutdown paths, and several
//! instances sharing one process.

mod support;

use std::time::{Duration, Instant};

use hostbot::{Config, Error, Faults};
use support::{Instance, PATIENCE, Raw, config, get, post, wait_for};

fn with_faults(faults: Faults) -> Config {
    Config { faults, ..config() }
}

#[tokio::test]
async fn slow_start_keeps_readiness_off_then_turns_it_on() {
    let start = Instant::now();
    let hostbot = Instance::start(with_faults(Faults {
        slow_start: Duration::from_millis(300),
        ..Faults::default()
    }))
    .await;
    assert_eq!(
        get(&hostbot.url("/readyz")).await.unwrap(),
        (503, "not ready: starting\n".into())
    );
    assert_eq!(
        get(&hostbot.url("/healthz")).await.unwrap().0,
        200,
        "alive while starting"
    );
    assert_eq!(
        get(&hostbot.url("/")).await.unwrap().0,
        200,
        "serves while starting"
    );
    hostbot.wait_ready().await;
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn never_ready_serves_but_never_turns_ready() {
    let hostbot = Instance::start(with_faults(Faults {
        never_ready: true,
        ..Faults::default()
    }))
    .await;
    for _ in 0..3 {
        assert_eq!(get(&hostbot.url("/")).await.unwrap().0, 200);
        assert_eq!(get(&hostbot.url("/readyz")).await.unwrap().0, 503);
    }
    // The toggle still works, for tests that want to heal it.
    assert_eq!(post(&hostbot.url("/readyz/enable")).await, 200);
    assert_eq!(get(&hostbot.url("/readyz")).await.unwrap().0, 503);
}

#[tokio::test]
async fn readiness_and_liveness_toggles() {
    let hostbot = Instance::ready(config()).await;
    assert_eq!(post(&hostbot.url("/readyz/disable")).await, 200);
    assert_eq!(
        get(&hostbot.url("/readyz")).await.unwrap(),
        (503, "not ready: disabled\n".into())
    );
    assert_eq!(post(&hostbot.url("/readyz/enable")).await, 200);
    assert_eq!(get(&hostbot.url("/readyz")).await.unwrap().0, 200);
    assert_eq!(post(&hostbot.url("/healthz/disable")).await, 200);
    assert_eq!(get(&hostbot.url("/healthz")).await.unwrap().0, 503);
    assert_eq!(
        get(&hostbot.url("/readyz")).await.unwrap().0,
        200,
        "independent toggles"
    );
}

#[tokio::test]
async fn response_delay_and_jitter() {
    let hostbot = Instance::ready(with_faults(Faults {
        response_delay: Duration::from_millis(200),
        response_jitter: Duration::from_millis(100),
        ..Faults::default()
    }))
    .await;
    let start = Instant::now();
    assert_eq!(get(&hostbot.url("/")).await.unwrap().0, 200);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    let start = Instant::now();
    get(&hostbot.url("/healthz")).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "probes are not delayed"
    );
}

#[tokio::test]
async fn error_rate_fails_that_fraction() {
    let hostbot = Instance::ready(with_faults(Faults {
        error_rate: 0.5,
        ..Faults::default()
    }))
    .await;
    let mut failed = 0;
    for _ in 0..200 {
        if get(&hostbot.url("/")).await.unwrap().0 == 500 {
            failed += 1;
        }
    }
    // Binomial(200, 0.5): 60..140 holds with overwhelming probability.
    assert!((60..140).contains(&failed), "{failed} of 200 failed");
    let (_, metrics) = get(&hostbot.url("/metrics")).await.unwrap();
    assert!(
        metrics.contains(&format!(
            "hostbot_http_requests_total{{code=\"500\"}} {failed}\n"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn crash_after_requests_ends_run_with_the_crash_code() {
    let hostbot = Instance::ready(with_faults(Faults {
        crash_after_requests: Some(1),
        crash_exit_code: 7,
        ..Faults::default()
    }))
    .await;
    assert_eq!(get(&hostbot.url("/")).await.unwrap().0, 200);
    assert_eq!(get(&hostbot.url("/")).await, None);
    match hostbot.finished(PATIENCE).await {
        Err(err @ Error::Crash { code: 7, .. }) => assert_eq!(err.exit_code(), 7),
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[tokio::test]
async fn crash_at_start_and_after_a_duration() {
    let at_start = Instance::start(with_faults(Faults {
        crash_at_start: true,
        ..Faults::default()
    }))
    .await;
    assert!(matches!(
        at_start.finished(PATIENCE).await,
        Err(Error::Crash { code: 1, .. })
    ));

    let start = Instant::now();
    let later = Instance::ready(with_faults(Faults {
        crash_after: Some(Duration::from_millis(300)),
        ..Faults::default()
    }))
    .await;
    let result = later.finished(PATIENCE).await;
    assert!(
        matches!(&result, Err(Error::Crash { reason, .. }) if reason == "after 300ms"),
        "{result:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn ignore_sigterm_ignores_the_token_but_not_force() {
    let hostbot = Instance::ready(with_faults(Faults {
        ignore_sigterm: true,
        ..Faults::default()
    }))
    .await;
    hostbot.shutdown.cancel();
    // Readiness would turn off at once if the request were honoured; it stays on.
    for _ in 0..5 {
        assert_eq!(get(&hostbot.url("/readyz")).await.unwrap().0, 200);
    }
    hostbot.force.cancel();
    assert!(matches!(
        hostbot.finished(PATIENCE).await,
        Err(Error::Forced)
    ));
}

#[tokio::test]
async fn shutdown_timeout_cuts_requests_that_take_too_long() {
    let hostbot = Instance::ready(Config {
        drain_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_millis(200),
        ..with_faults(Faults {
            response_delay: Duration::from_secs(30),
            ..Faults::default()
        })
    })
    .await;
    let url = hostbot.url("/");
    let stuck = tokio::spawn(async move { get(&url).await });
    wait_for("the request to be in flight", PATIENCE, || async {
        let (_, metrics) = get(&hostbot.url("/metrics")).await?;
        metrics
            .contains("hostbot_http_requests_in_flight 2")
            .then_some(())
    })
    .await;
    let start = Instant::now();
    hostbot.shutdown.cancel();
    let result = hostbot.finished(PATIENCE).await;
    assert!(
        matches!(result, Err(Error::ShutdownTimeout { open: 1, .. })),
        "{result:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(stuck.await.unwrap(), None, "the cut request gets no answer");
}

#[tokio::test]
async fn clean_shutdown_returns_ok_and_refuses_new_connections() {
    let hostbot = Instance::ready(config()).await;
    let addr = hostbot.addr;
    hostbot.shutdown.cancel();
    hostbot.finished(PATIENCE).await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn dropping_run_cuts_every_connection_like_sigkill() {
    let hostbot = Instance::ready(config()).await;
    let mut idle = Raw::connect(hostbot.addr).await;
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    idle.response().await;
    hostbot.task.abort();
    idle.closed_within(PATIENCE).await;
}

#[tokio::test]
async fn slowloris_is_cut_after_the_header_timeout() {
    let hostbot = Instance::ready(Config {
        header_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut slow = Raw::connect(hostbot.addr).await;
    let start = Instant::now();
    // A byte every 50 ms: always some progress, never a complete head.
    let trickle = async {
        for byte in b"GET / HTTP/1.1\r\nHost: hostbot\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if slow.send(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, trickle)
        .await
        .expect("connection was never cut");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A silent connection gets the same treatment from the moment it is accepted.
    let mut silent = Raw::connect(hostbot.addr).await;
    let took = silent.closed_within(PATIENCE).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");
}

#[tokio::test]
async fn idle_timeout_is_separate_from_the_header_timeout() {
    let hostbot = Instance::ready(Config {
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_millis(300),
        ..with_faults(Faults {
            response_delay: Duration::from_millis(600),
            ..Faults::default()
        })
    })
    .await;
    let mut conn = Raw::connect(hostbot.addr).await;
    // A busy connection is not idle: a response slower than the idle timeout is delivered.
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(conn.response().await.starts_with("HTTP/1.1 200"));
    // Then, with nothing to do, it is closed after the idle timeout (not the header timeout).
    let took = conn.closed_within(PATIENCE).await;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let hostbot = Instance::ready(config()).await;
    let accepted = || async {
        let (_, metrics) = get(&hostbot.url("/metrics")).await.unwrap();
        let line = metrics
            .lines()
            .find(|line| line.starts_with("hostbot_connections_total "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    let before = accepted().await;
    let mut conn = Raw::connect(hostbot.addr).await;
    for _ in 0..3 {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(conn.response().await.starts_with("HTTP/1.1 200"));
    }
    // One connection for the three requests, one for this metrics request.
    assert_eq!(accepted().await - before, 2);
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_rejected() {
    let hostbot = Instance::ready(Config {
        max_header_size: 1024,
        max_body_size: 100,
        ..config()
    })
    .await;
    let mut conn = Raw::connect(hostbot.addr).await;
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    conn.send(big_header.as_bytes()).await.unwrap();
    let response = conn.response().await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");

    let response = support::client()
        .post(hostbot.url("/readyz/enable"))
        .body(vec![b'x'; 101])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = support::client()
        .post(hostbot.url("/readyz/enable"))
        .body(vec![b'x'; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn instances_in_one_process_share_nothing() {
    let mut instances = Vec::new();
    for name in ["pod-a", "pod-b", "pod-c"] {
        instances.push(
            Instance::ready(Config {
                hostname: name.into(),
                ..config()
            })
            .await,
        );
    }
    assert_eq!(post(&instances[1].url("/readyz/disable")).await, 200);
    for (instance, name) in instances.iter().zip(["pod-a", "pod-b", "pod-c"]) {
        let (_, body) = get(&instance.url("/")).await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["host"], name);
        let ready = get(&instance.url("/readyz")).await.unwrap().0;
        assert_eq!(ready, if name == "pod-b" { 503 } else { 200 }, "{name}");
    }
    instances[0].shutdown.cancel();
    let first = instances.remove(0);
    first.finished(PATIENCE).await.unwrap();
    for instance in &instances {
        assert_eq!(get(&instance.url("/healthz")).await.unwrap().0, 200);
    }
}
