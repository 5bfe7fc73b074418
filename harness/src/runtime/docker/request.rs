//! What the engine is asked for: the entrypoint and command, the container's name, the port
//! bindings on the pod IP, and how the image shows in the pod's status.

use std::collections::HashMap;
use std::path::Path;

use testcontainers::bollard::models::{ImageInspect, PortBinding};

use crate::runtime::ContainerConfig;
use crate::runtime::catalog::HOSTBOT;

pub(super) fn entrypoint_and_cmd(info: &ImageInspect) -> (Vec<String>, Vec<String>) {
    let config = info.config.clone().unwrap_or_default();
    (
        config.entrypoint.unwrap_or_default(),
        config.cmd.unwrap_or_default(),
    )
}

/// `docker-pullable://repo@sha256:...` when the image came from a registry, else
/// `docker://sha256:...`, as the kubelet showed images of the Docker engine.
pub(super) fn image_id(info: &ImageInspect) -> String {
    match info.repo_digests.iter().flatten().next() {
        Some(digest) => format!("docker-pullable://{digest}"),
        None => format!("docker://{}", info.id.clone().unwrap_or_default()),
    }
}

/// The entrypoint and command to give the engine: `None` when the kubelet's argv is the
/// image's own (keep the image's), else the argv with its program first. The kubelet names the
/// hostbot program `hostbot` whatever its path; inside an image whose entrypoint is a hostbot,
/// that path is used again.
pub(super) fn docker_argv(
    argv: &[String],
    entrypoint: &[String],
    cmd: &[String],
) -> Option<Vec<String>> {
    let default: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    let mut want = argv.to_vec();
    if want.first().is_some_and(|p| p == HOSTBOT)
        && let Some(program) = default
            .first()
            .filter(|p| Path::new(p).file_name().is_some_and(|n| n == HOSTBOT))
    {
        want[0] = program.clone();
    }
    (want != default && !want.is_empty()).then_some(want)
}

pub(super) fn namespace_of(config: &ContainerConfig) -> &str {
    config.pod.split_once('/').map_or("default", |(ns, _)| ns)
}

pub(super) fn pod_name_of(config: &ContainerConfig) -> &str {
    config
        .pod
        .split_once('/')
        .map_or(&config.pod, |(_, name)| name)
}

/// `k8s_<container>_<pod>_<namespace>_<instance>_<n>`, like the dockershim's names (which end
/// in the pod uid and the attempt instead).
pub(super) fn container_name(config: &ContainerConfig, instance: &str, seq: u64) -> String {
    format!(
        "k8s_{}_{}_{}_{}_{seq}",
        config.name,
        pod_name_of(config),
        namespace_of(config),
        &instance[..instance.len().min(8)]
    )
}

/// Every port on the pod's IP, to the same port inside.
pub(super) fn port_bindings(config: &ContainerConfig) -> HashMap<String, Option<Vec<PortBinding>>> {
    config
        .ports
        .iter()
        .map(|port| {
            (
                format!("{port}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some(config.pod_ip.to_string()),
                    host_port: Some(port.to_string()),
                }]),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_images_own_command_is_kept_and_overrides_are_whole() {
        let entrypoint = strings(&["/hostbot"]);
        type Case<'a> = (
            Vec<String>,
            &'a [&'a str],
            &'a [&'a str],
            Option<Vec<String>>,
        );
        let cases: [Case; 5] = [
            // hostbot as the kubelet names it: the image's own entrypoint.
            (strings(&["hostbot"]), &["/hostbot"], &[], None),
            (
                strings(&["hostbot", "--drain-delay=1s"]),
                &["/hostbot"],
                &[],
                Some(strings(&["/hostbot", "--drain-delay=1s"])),
            ),
            (
                strings(&["sh", "-c", "x"]),
                &["/hostbot"],
                &[],
                Some(strings(&["sh", "-c", "x"])),
            ),
            (
                strings(&["nginx", "-g", "daemon off;"]),
                &[],
                &["nginx", "-g", "daemon off;"],
                None,
            ),
            // Another image: `hostbot` stays a name found through PATH.
            (
                strings(&["hostbot"]),
                &["/bin/sh"],
                &[],
                Some(strings(&["hostbot"])),
            ),
        ];
        for (argv, entry, cmd, want) in cases {
            assert_eq!(
                docker_argv(&argv, &strings(entry), &strings(cmd)),
                want,
                "{argv:?}"
            );
        }
        assert_eq!(docker_argv(&[], &entrypoint, &[]), None);
    }

    #[test]
    fn names_and_bindings_follow_the_pod() {
        let config = ContainerConfig {
            pod: "shop/web-7d9f-abcde".into(),
            name: "hostbot".into(),
            argv: strings(&["hostbot"]),
            env: Vec::new(),
            hostname: "web-7d9f-abcde".into(),
            pod_ip: "127.1.2.3".parse().unwrap(),
            mounts: Vec::new(),
            scratch: "/tmp/x".into(),
            working_dir: None,
            log: crate::kubelet::logs::ContainerLog::new(16),
            image: "yourname/hostbot:v1".into(),
            ports: vec![80, 9090],
        };
        assert_eq!(
            container_name(&config, "0123456789abcdef", 4),
            "k8s_hostbot_web-7d9f-abcde_shop_01234567_4"
        );
        let bindings = port_bindings(&config);
        let http = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!(http[0].host_ip.as_deref(), Some("127.1.2.3"));
        assert_eq!(http[0].host_port.as_deref(), Some("80"));
        assert!(bindings.contains_key("9090/tcp"));
    }
}
