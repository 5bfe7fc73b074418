//! Scratch: serve the API on a fresh store and keep it up (delete me).
use harness::api::{self, ApiOptions, BoxFuture, LogOptions, LogStream, NodeServices};
use harness::store::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
struct Node {
    store: Arc<Store>,
}
impl NodeServices for Node {
    fn logs(&self, _: &str, _: &str, _: &LogOptions) -> harness::Result<LogStream> {
        Ok(api::log_stream_from("hello\n"))
    }
    fn connect<'a>(
        &'a self,
        ns: &'a str,
        pod: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<tokio::net::TcpStream>> {
        Box::pin(async move {
            let p = self
                .store
                .get_as::<k8s_openapi::api::core::v1::Pod>(ns, pod)
                .ok_or_else(|| std::io::Error::other("no pod"))?;
            let ip = p
                .status
                .and_then(|s| s.pod_ip)
                .unwrap_or("127.0.0.1".into());
            tokio::net::TcpStream::connect((ip.as_str(), port)).await
        })
    }
}
#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or("debug".into()))
        .init();
    let store = Store::new();
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let server = api::serve(
        store.clone(),
        Arc::new(Node {
            store: store.clone(),
        }),
        ApiOptions {
            port: 0,
            token: "tok".into(),
            state_dir: dir.join("state"),
        },
        &TaskTracker::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    harness::kubeconfig::write(
        &dir.join("kubeconfig"),
        &server.url(),
        server.ca_pem(),
        "tok",
        "harness",
    )
    .unwrap();
    println!("ready {}", server.url());
    tokio::signal::ctrl_c().await.unwrap();
}
