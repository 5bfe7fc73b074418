//! [`KubeOps`]: [`ClusterOps`] over the Kubernetes API with the `kube` crate, so the same check
//! runs on the embedded cluster's API, kind, k3s or a production cluster; and
//! [`forward_service`], a local port that sends each new connection to a ready pod behind a
//! Service through the API's pod port-forward, round-robin, so it survives pod churn (the
//! machinery is [`crate::kube_forward`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::kube_apply;
use super::ops::{ClusterOps, PodInfo, RolloutState, pod_info, rollout_state};
use crate::kube_forward::{self, Destination, ServiceEndpoints, Sessions};
use crate::object::Kind;

/// Cluster operations in one namespace, through the API.
#[derive(Clone)]
pub struct KubeOps {
    client: Client,
    namespace: String,
}

impl KubeOps {
    /// Connects with a kubeconfig file and an optional context.
    pub async fn connect(
        kubeconfig: &Path,
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> anyhow::Result<KubeOps> {
        KubeOps::connect_with(Some(kubeconfig), context, namespace).await
    }

    /// Connects with a kubeconfig file, or without one as kubectl does: the files in
    /// `$KUBECONFIG`, else `~/.kube/config`.
    pub async fn connect_with(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> anyhow::Result<KubeOps> {
        let (file, shown) = match kubeconfig {
            Some(path) => (
                Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?,
                path.display().to_string(),
            ),
            None => (
                Kubeconfig::read().context(
                    "cannot read a kubeconfig from $KUBECONFIG or ~/.kube/config (use --kubeconfig)",
                )?,
                "from $KUBECONFIG".to_owned(),
            ),
        };
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(file, &options)
            .await
            .with_context(|| format!("kubeconfig {shown}: unusable context"))?;
        let namespace = namespace
            .map(str::to_owned)
            .unwrap_or_else(|| config.default_namespace.clone());
        let url = config.cluster_url.to_string();
        let client = kube_forward::client(config)?;
        client
            .apiserver_version()
            .await
            .with_context(|| format!("cluster at {url} is unreachable"))?;
        Ok(KubeOps { client, namespace })
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The namespace the operations act in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn dynamic(&self, kind: &str) -> anyhow::Result<(Api<DynamicObject>, Kind)> {
        let kind = Kind::parse(kind).with_context(|| {
            format!(
                "unknown kind {kind:?}: supported are {}",
                Kind::supported_list()
            )
        })?;
        let resource = ApiResource {
            group: kind.group().into(),
            version: "v1".into(),
            api_version: kind.api_version().into(),
            kind: kind.name().into(),
            plural: kind.plural().into(),
        };
        let api = if kind.namespaced() {
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        Ok((api, kind))
    }
}

impl ClusterOps for KubeOps {
    async fn apply(&self, path: &Path) -> anyhow::Result<()> {
        let manifests = crate::manifest::load_path(path)?;
        for manifest in manifests {
            let object = manifest.object;
            let (api, _) = self.dynamic(object.kind().name())?;
            let mut json = object.to_json();
            if let Some(meta) = json.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.insert("namespace".into(), self.namespace.clone().into());
            }
            let name = object.name().to_owned();
            match api.get_opt(&name).await? {
                None => {
                    let dynamic: DynamicObject =
                        serde_json::from_value(kube_apply::with_last_applied(&json))?;
                    api.create(&PostParams::default(), &dynamic)
                        .await
                        .with_context(|| format!("creating {} {name:?}", object.kind()))?;
                }
                Some(current) => {
                    let patch = kube_apply::patch(&json, &serde_json::to_value(&current)?);
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .with_context(|| format!("updating {} {name:?}", object.kind()))?;
                }
            }
        }
        Ok(())
    }

    async fn merge_patch(
        &self,
        kind: &str,
        name: &str,
        patch: serde_json::Value,
    ) -> anyhow::Result<()> {
        let (api, kind) = self.dynamic(kind)?;
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("patching {} {name:?}", kind.singular()))?;
        Ok(())
    }

    async fn delete(&self, kind: &str, name: &str) -> anyhow::Result<()> {
        let (api, kind) = self.dynamic(kind)?;
        api.delete(name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting {} {name:?}", kind.singular()))?;
        Ok(())
    }

    async fn pods(&self, selector: &str) -> anyhow::Result<Vec<PodInfo>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        let pods = api.list(&params).await.context("listing pods")?;
        Ok(pods.items.iter().map(pod_info).collect())
    }

    fn can_kill(&self) -> bool {
        false
    }

    async fn kill_container(&self, pod: &str, _hard: bool) -> anyhow::Result<()> {
        bail!(
            "cannot kill a container process of pod {pod} through the API; this step needs the embedded cluster"
        )
    }

    async fn rollout(&self, deployment: &str) -> anyhow::Result<RolloutState> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let d = api
            .get(deployment)
            .await
            .with_context(|| format!("deployment {deployment:?}"))?;
        Ok(rollout_state(&d))
    }

    async fn set_image(
        &self,
        deployment: &str,
        container: Option<&str>,
        image: &str,
    ) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let d = api
            .get(deployment)
            .await
            .with_context(|| format!("deployment {deployment:?}"))?;
        let containers = d
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers)
            .unwrap_or_default();
        let name = match container {
            Some(c) => c.to_owned(),
            None => containers
                .first()
                .map(|c| c.name.clone())
                .context("deployment has no container")?,
        };
        if !containers.iter().any(|c| c.name == name) {
            bail!("deployment {deployment:?} has no container {name:?}");
        }
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": name, "image": image}
        ]}}}});
        api.patch(
            deployment,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .with_context(|| format!("setting the image of deployment {deployment:?}"))?;
        Ok(())
    }
}

/// Listens on 127.0.0.1 (port 0 = any) and forwards each new connection to the next ready pod
/// behind `service` (round-robin over its Endpoints), through the API's pod port-forward (see
/// [`crate::kube_forward`]).
pub async fn forward_service(
    ops: KubeOps,
    service: &str,
    service_port: u16,
    local_port: u16,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", local_port))
        .await
        .with_context(|| format!("unable to listen on port {local_port}"))?;
    let addr = listener.local_addr()?;
    let endpoints = ServiceEndpoints::watch(
        ops.client.clone(),
        &ops.namespace,
        service,
        tracker,
        cancel.clone(),
    )
    .await?;
    let sessions = Sessions::new(ops.client.clone(), &ops.namespace, tracker, cancel.clone());
    let destination = Destination::Service {
        endpoints,
        port: service_port,
        sessions,
    };
    let on_error = Arc::new(|message: String| {
        tracing::debug!(%message, "forwarded connection failed");
    });
    kube_forward::serve(listener, destination, tracker, cancel, on_error);
    Ok(addr)
}
