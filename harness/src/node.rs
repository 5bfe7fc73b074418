//! [`ClusterNode`]: the API server's window onto the node ([`NodeServices`]): container logs
//! from the kubelet, and TCP connections to a pod's IP for `pods/portforward`.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::api::{BoxFuture, LogOptions, LogStream, NodeServices};
use crate::error::{Error, Result};
use crate::kubelet::Kubelet;
use crate::object::{Kind, ObjectKey};
use crate::store::Store;

/// The node services of an embedded cluster.
pub struct ClusterNode {
    pub store: Arc<Store>,
    pub kubelet: Arc<Kubelet>,
    /// Where log-following tasks run.
    pub tracker: TaskTracker,
}

impl NodeServices for ClusterNode {
    fn logs(&self, namespace: &str, pod: &str, options: &LogOptions) -> Result<LogStream> {
        let log = self
            .kubelet
            .logs(namespace, pod, &options.container, options.previous)
            .ok_or_else(|| {
                let which = if options.previous {
                    "previous terminated"
                } else {
                    "running"
                };
                Error::BadRequest(format!(
                    "{which} container {:?} in pod {pod:?} not found",
                    options.container
                ))
            })?;
        let (kept, mut follower) = log.follow();
        let skip = match options.tail_lines {
            Some(n) if n >= 0 => kept.len().saturating_sub(n as usize),
            _ => 0,
        };
        let head: Vec<u8> = kept[skip..]
            .iter()
            .flat_map(|l| l.bytes.iter().copied())
            .collect();
        if !options.follow {
            return Ok(crate::api::log_stream_from(head));
        }
        let (tx, rx) = mpsc::channel(64);
        self.tracker.spawn(async move {
            if !head.is_empty() && tx.send(Bytes::from(head)).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    line = follower.next() => match line {
                        Some(line) => {
                            if tx.send(Bytes::from(line.bytes.clone())).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                }
            }
        });
        Ok(rx)
    }

    fn connect<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<TcpStream>> {
        Box::pin(async move {
            let key = ObjectKey::new(Kind::Pod, namespace, pod);
            let found: Pod = self.store.get_as(namespace, pod).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{key} not found"))
            })?;
            let ip = found
                .status
                .and_then(|s| s.pod_ip)
                .ok_or_else(|| io::Error::other(format!("pod {pod} has no IP yet")))?;
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| io::Error::other(format!("pod {pod} has an invalid IP {ip:?}")))?;
            TcpStream::connect((ip, port)).await
        })
    }
}
