//! What a container instance is started with: the [`ContainerConfig`] the runtime gets. The
//! environment is layered as a node layers it (derived `HOST`/`PORT`/`CONFIG_DIR`, the image's
//! variables, `HOSTNAME`, then the pod's own); the argv combines the image's entrypoint with the
//! pod's `command`/`args`; the mounts point at the pod's volumes, with `subPath`s of
//! ConfigMap-like volumes copied so they stay pinned. A failure here is a
//! `CreateContainerConfigError` message, not a start attempt.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::Runner;
use crate::kubelet::env;
use crate::kubelet::logs::{ContainerLog, DEFAULT_LOG_BYTES};
use crate::runtime::ContainerConfig;
use crate::runtime::catalog::{HOSTBOT, Image};
use crate::runtime::mounts::MountSpec;

impl Runner {
    /// Everything the runtime needs; an error is a `CreateContainerConfigError` message.
    pub(super) fn prepare(&mut self, image: &Image) -> Result<ContainerConfig, String> {
        let pod = self.ctx.pod();
        self.config_changed.borrow_and_update();
        let user = env::resolve(
            self.ctx.kubelet.store.as_ref(),
            &pod,
            &self.spec,
            &self.ctx.facts(),
        )?;
        let spec = &self.spec;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // What the node adds, lowest first: derived settings, the image's environment, the
        // hostname, then the pod's own variables.
        env.insert("HOST".into(), self.ctx.ip.to_string());
        if let Some(port) = spec.ports.iter().flatten().next() {
            env.insert("PORT".into(), port.container_port.to_string());
        }
        if let Some(dir) = self.config_dir(&pod) {
            env.insert("CONFIG_DIR".into(), dir);
        }
        env.extend(image.env.iter().cloned());
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.ctx.name.clone());
        env.insert("HOSTNAME".into(), hostname.clone());
        env.extend(user);
        // In a pod, loopback and "any address" are the pod's own network namespace; here they
        // would be the host's, shared by every pod. Bind the pod's own IP instead.
        if env.get("HOST").is_some_and(|h| {
            matches!(
                h.as_str(),
                "localhost" | "127.0.0.1" | "::1" | "0.0.0.0" | "::" | ""
            )
        }) {
            env.insert("HOST".into(), self.ctx.ip.to_string());
        }

        let argv = command_line(spec, &image.entrypoint, &env)?;
        let ports = crate::runtime::ports::reachable(spec, &env);
        let scratch = self
            .ctx
            .dir
            .join("containers")
            .join(format!("{}-{}", spec.name, self.instances));
        let mounts = self.mounts(&env, &scratch)?;
        Ok(ContainerConfig {
            pod: format!("{}/{}", self.ctx.namespace, self.ctx.name),
            name: spec.name.clone(),
            argv,
            env: env.into_iter().collect(),
            hostname,
            pod_ip: self.ctx.ip,
            mounts,
            scratch,
            working_dir: spec.working_dir.as_ref().map(PathBuf::from),
            log: ContainerLog::new(DEFAULT_LOG_BYTES),
            image: self.image(),
            ports,
        })
    }

    /// The mountPath of the first whole ConfigMap-like volume, for `CONFIG_DIR`.
    fn config_dir(&self, pod: &Pod) -> Option<String> {
        let volumes = pod.spec.as_ref()?.volumes.as_ref()?;
        self.spec.volume_mounts.iter().flatten().find_map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name)?;
            let configish = v.config_map.is_some() || v.secret.is_some() || v.projected.is_some();
            let whole = m.sub_path.as_deref().unwrap_or_default().is_empty()
                && m.sub_path_expr.as_deref().unwrap_or_default().is_empty();
            (configish && whole).then(|| m.mount_path.clone())
        })
    }

    /// The container's mounts; `subPath`s of ConfigMap-like volumes are copied, so they never
    /// change (as upstream, where they pin the file of the moment).
    fn mounts(
        &self,
        env: &BTreeMap<String, String>,
        scratch: &Path,
    ) -> Result<Vec<MountSpec>, String> {
        let volumes = self.ctx.volumes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (i, m) in self.spec.volume_mounts.iter().flatten().enumerate() {
            let Some(root) = volumes.path(&m.name) else {
                return Err(format!(
                    "cannot find volume \"{}\" to mount into container \"{}\"",
                    m.name, self.spec.name
                ));
            };
            let sub = match (&m.sub_path, &m.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(e)) if !e.is_empty() => env::expand(e, |n| env.get(n).cloned()),
                _ => String::new(),
            };
            let atomic = volumes.is_atomic(&m.name);
            let read_only = m.read_only.unwrap_or(false) || atomic;
            if sub.is_empty() {
                out.push(MountSpec {
                    source: root.to_path_buf(),
                    target: PathBuf::from(&m.mount_path),
                    read_only,
                    file: false,
                });
                continue;
            }
            let relative = Path::new(&sub);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(format!(
                    "failed to prepare subPath for volumeMount \"{}\" of container \"{}\": invalid subPath {sub:?}",
                    m.name, self.spec.name
                ));
            }
            let path = root.join(relative);
            let failed = |e: std::io::Error| {
                format!(
                    "failed to prepare subPath for volumeMount \"{}\" of container \"{}\": {e}",
                    m.name, self.spec.name
                )
            };
            let (source, file) = if atomic {
                let resolved = std::fs::canonicalize(&path).map_err(failed)?;
                let copy = scratch
                    .join(format!("subpath-{i}"))
                    .join(relative.file_name().unwrap_or_default());
                copy_tree(&resolved, &copy).map_err(failed)?;
                let file = copy.is_file();
                (copy, file)
            } else {
                if !path.exists() {
                    std::fs::create_dir_all(&path).map_err(failed)?;
                }
                let file = path.is_file();
                (path, file)
            };
            out.push(MountSpec {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only,
                file,
            });
        }
        Ok(out)
    }
}

/// The argv of a container, as a runtime combines image and pod: the pod's `command` replaces
/// the entrypoint, `args` follow; `$(VAR)` references are expanded; a program named `hostbot`
/// is hostbot itself.
fn command_line(
    spec: &Container,
    entrypoint: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let command = spec.command.clone().filter(|c| !c.is_empty());
    let args = spec.args.clone().filter(|a| !a.is_empty());
    let mut argv = match (command, args) {
        (Some(command), args) => command
            .into_iter()
            .chain(args.into_iter().flatten())
            .collect(),
        (None, Some(args)) => entrypoint.iter().cloned().chain(args).collect(),
        (None, None) => entrypoint.to_vec(),
    };
    if argv.is_empty() {
        return Err(format!(
            "no command specified for container \"{}\": the image has no entrypoint",
            spec.name
        ));
    }
    for arg in &mut argv {
        *arg = env::expand(arg, |n| env.get(n).cloned());
    }
    if Path::new(&argv[0])
        .file_name()
        .is_some_and(|n| n == HOSTBOT)
    {
        argv[0] = HOSTBOT.to_owned();
    }
    Ok(argv)
}

/// Copies a file or a directory tree (following symlinks).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_combine_image_and_pod() {
        let env: BTreeMap<String, String> = [("PORT".to_owned(), "8080".to_owned())].into();
        let container = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: command.map(|c| c.into_iter().map(String::from).collect()),
            args: args.map(|a| a.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let hostbot = vec![HOSTBOT.to_owned()];
        type Case<'a> = (Container, Vec<String>, Result<Vec<&'a str>, ()>);
        let cases: Vec<Case> = vec![
            (container(None, None), hostbot.clone(), Ok(vec!["hostbot"])),
            (
                container(None, Some(vec!["--port=$(PORT)"])),
                hostbot.clone(),
                Ok(vec!["hostbot", "--port=8080"]),
            ),
            (
                container(Some(vec!["/app/hostbot", "--drain-delay=1s"]), None),
                hostbot.clone(),
                Ok(vec!["hostbot", "--drain-delay=1s"]),
            ),
            (
                container(Some(vec!["sh", "-c"]), Some(vec!["echo $(PORT) $(NOPE)"])),
                hostbot,
                Ok(vec!["sh", "-c", "echo 8080 $(NOPE)"]),
            ),
            (container(None, None), vec![], Err(())),
        ];
        for (spec, entrypoint, want) in cases {
            let got = command_line(&spec, &entrypoint, &env).map_err(|_| ());
            let want = want.map(|w| w.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, want, "{:?} {:?}", spec.command, spec.args);
        }
    }
}
