// temporary micro-benchmark (not committed)
use harness::check::kube_ops::{self, KubeOps};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench() {
    let path = std::env::var("KUBECONFIG").unwrap();
    let ops = KubeOps::connect(std::path::Path::new(&path), None, None)
        .await
        .unwrap();
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let addr = kube_ops::forward_service(ops, "hostbot", 80, 0, &tracker, cancel.clone())
        .await
        .unwrap();
    let n = 200;
    let mut lat = Vec::new();
    let (t, u) = (Instant::now(), cpu());
    for _ in 0..n {
        let t0 = Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        assert!(
            buf.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "forward_service sequential: {:?} wall, {:.2} ms cpu each, p50 {:?} p90 {:?}",
        t.elapsed() / n,
        (cpu() - u) * 1e3 / n as f64,
        lat[n as usize / 2],
        lat[n as usize * 9 / 10]
    );
}
