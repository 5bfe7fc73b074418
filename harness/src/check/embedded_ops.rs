//! [`EmbeddedOps`]: [`ClusterOps`] on an in-process [`Cluster`], through its store as the API
//! server would act, plus the one thing no API offers: killing a container process (S17).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

use super::ops::{ClusterOps, PodInfo, RolloutState, merge, pod_info, rollout_state};
use crate::cluster::Cluster;
use crate::object::{Kind, Object, ObjectKey};
use crate::selector::Selector;
use crate::store::DeleteOptions;

/// Operations on one namespace of an embedded cluster.
#[derive(Clone)]
pub struct EmbeddedOps {
    cluster: Arc<Cluster>,
    namespace: String,
}

impl EmbeddedOps {
    pub fn new(cluster: Arc<Cluster>, namespace: &str) -> EmbeddedOps {
        EmbeddedOps {
            cluster,
            namespace: namespace.to_owned(),
        }
    }

    fn key(&self, kind: &str, name: &str) -> anyhow::Result<ObjectKey> {
        let kind = Kind::parse(kind).with_context(|| {
            format!(
                "unknown kind {kind:?}: supported are {}",
                Kind::supported_list()
            )
        })?;
        Ok(ObjectKey::new(kind, &self.namespace, name))
    }
}

impl ClusterOps for EmbeddedOps {
    async fn apply(&self, path: &Path) -> anyhow::Result<()> {
        self.cluster.apply_path(path)?;
        Ok(())
    }

    async fn merge_patch(
        &self,
        kind: &str,
        name: &str,
        patch: serde_json::Value,
    ) -> anyhow::Result<()> {
        let key = self.key(kind, name)?;
        for _ in 0..10 {
            let store = self.cluster.store();
            let current = store
                .get(&key)
                .with_context(|| format!("{key} not found"))?;
            let mut json = current.to_json();
            merge(&mut json, &patch);
            let patched = Object::from_json(key.kind, json).with_context(|| {
                format!("patching {key}: the result is not a valid {}", key.kind)
            })?;
            match store.update(patched) {
                Ok(_) => return Ok(()),
                Err(crate::Error::Conflict(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        bail!("patching {key}: kept conflicting with other writers")
    }

    async fn delete(&self, kind: &str, name: &str) -> anyhow::Result<()> {
        let key = self.key(kind, name)?;
        self.cluster
            .store()
            .delete(&key, DeleteOptions::default())?;
        Ok(())
    }

    async fn pods(&self, selector: &str) -> anyhow::Result<Vec<PodInfo>> {
        let selector = Selector::parse(selector)?;
        let pods: Vec<Pod> = self
            .cluster
            .store()
            .list_as(Some(&self.namespace), &selector);
        Ok(pods.iter().map(pod_info).collect())
    }

    async fn kill_container(&self, pod: &str, hard: bool) -> anyhow::Result<()> {
        let found: Pod = self
            .cluster
            .get(&self.namespace, pod)
            .with_context(|| format!("pod {pod:?} not found"))?;
        let container = found
            .spec
            .and_then(|s| s.containers.first().map(|c| c.name.clone()))
            .context("pod has no container")?;
        if !self
            .cluster
            .kubelet()
            .signal_container(&self.namespace, pod, &container, hard)
        {
            bail!("container {container} of pod {pod} is not running");
        }
        Ok(())
    }

    async fn rollout(&self, deployment: &str) -> anyhow::Result<RolloutState> {
        let d: Deployment = self
            .cluster
            .get(&self.namespace, deployment)
            .with_context(|| format!("deployment {deployment:?} not found"))?;
        Ok(rollout_state(&d))
    }

    async fn set_image(
        &self,
        deployment: &str,
        container: Option<&str>,
        image: &str,
    ) -> anyhow::Result<()> {
        let (_, found) =
            self.cluster
                .store()
                .modify::<Deployment, _>(&self.namespace, deployment, |d| {
                    let containers = d
                        .spec
                        .as_mut()
                        .and_then(|s| s.template.spec.as_mut())
                        .map(|s| &mut s.containers);
                    let Some(containers) = containers else {
                        return false;
                    };
                    let target = match container {
                        Some(name) => containers.iter_mut().find(|c| c.name == name),
                        None => containers.first_mut(),
                    };
                    match target {
                        Some(c) => {
                            c.image = Some(image.to_owned());
                            true
                        }
                        None => false,
                    }
                })?;
        if !found {
            bail!(
                "deployment {deployment:?} has no container {:?}",
                container.unwrap_or("(first)")
            );
        }
        Ok(())
    }
}
