// temporary micro-benchmark (not committed)
use std::time::Instant;
use harness::check::kube_ops::KubeOps;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench() {
    let path = std::env::var("KUBECONFIG").unwrap();
    let ops = KubeOps::connect(std::path::Path::new(&path), None, None).await.unwrap();
    let c = ops.client().clone();
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let n = 100;
    let (t, u) = (Instant::now(), cpu());
    for _ in 0..n { eps.get("hostbot").await.unwrap(); }
    println!("GET endpoints: {:?} wall, {:.2} ms cpu each", t.elapsed() / n, (cpu() - u) * 1e3 / n as f64);
    let (t, u) = (Instant::now(), cpu());
    for _ in 0..n { svcs.get("hostbot").await.unwrap(); }
    println!("GET service: {:?} wall, {:.2} ms cpu each", t.elapsed() / n, (cpu() - u) * 1e3 / n as f64);
    let (t, u) = (Instant::now(), cpu());
    for _ in 0..n {
        let mut pf = pods.portforward("hostbot", &[80]).await.unwrap();
        let mut s = pf.take_stream(80).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
    }
    println!("portforward + GET /: {:?} wall, {:.2} ms cpu each", t.elapsed() / n, (cpu() - u) * 1e3 / n as f64);
}
