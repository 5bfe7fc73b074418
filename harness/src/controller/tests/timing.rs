//! Time: minReadySeconds and progress deadlines.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_seconds_delays_availability() {
    let c = Cluster::start(true);
    let mut d = deployment("web", 2, "web:v1");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(1);
    c.store.create_as(d).unwrap();
    let ready_at = c
        .wait_for("two ready pods", |c| {
            let rs = c.replica_sets().pop()?;
            let s = rs.status?;
            (s.ready_replicas == Some(2)).then(|| (std::time::Instant::now(), s.available_replicas))
        })
        .await;
    assert_eq!(ready_at.1, None, "not available as soon as ready");
    c.wait_complete("web").await;
    assert!(ready_at.0.elapsed() >= Duration::from_millis(900));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let c = Cluster::start(true);
    let mut d = deployment("web", 1, "web:v1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(1);
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    c.store.create_as(d).unwrap();
    c.wait_complete("web").await;
    c.auto_ready.store(false, Ordering::SeqCst);
    set_image(&c, "web", "web:broken");
    let d = c
        .wait_for("ProgressDeadlineExceeded", |c| {
            let d = c.deployment("web");
            let p = get_condition(d.status.as_ref(), PROGRESSING)?;
            (p.reason.as_deref() == Some(dstatus::TIMED_OUT)).then(|| d.clone())
        })
        .await;
    let p = get_condition(d.status.as_ref(), PROGRESSING).unwrap();
    assert_eq!(p.status, "False");
    // Nothing else happens: the old pod keeps serving, the new one waits.
    let rss = c.replica_sets();
    let mut sizes: Vec<(String, i32)> = rss
        .iter()
        .map(|rs| (image_of(rs), revision::replicas(rs)))
        .collect();
    sizes.sort();
    assert_eq!(sizes, [("web:broken".into(), 1), ("web:v1".into(), 1)]);
    let available = get_condition(d.status.as_ref(), dstatus::AVAILABLE).unwrap();
    assert_eq!(available.status, "True");
    c.stop().await;
}
