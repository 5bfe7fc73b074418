use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapVolumeSource, EnvFromSource,
    EnvVarSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("hostbot".into()),
        ..Default::default()
    }
}

fn deployment(annotations: &[(&str, &str)], pod: PodSpec) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("hostbot".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn env_of(t: &PodTemplateSpec, container: usize) -> Vec<(String, String)> {
    t.spec.as_ref().unwrap().containers[container]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

const CHANGE: Change<'static> = Change {
    source: Source::ConfigMap,
    name: "hello-config",
    hash: "abc",
};

#[test]
fn env_names() {
    assert_eq!(
        env_var_name(Source::ConfigMap, "hello-server-configmap"),
        "STAKATER_HELLO_SERVER_CONFIGMAP_CONFIGMAP"
    );
    assert_eq!(
        env_var_name(Source::Secret, "db.creds--x"),
        "STAKATER_DB_CREDS_X_SECRET"
    );
}

#[test]
fn hashes_like_reloader() {
    let cm = ConfigMap {
        data: Some(BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ])),
        ..Default::default()
    };
    // sha1("a=1;b=2"): sorted pairs joined by ';'.
    assert_eq!(
        data_hash(&Object::ConfigMap(cm)).unwrap(),
        "f83e99e324ba68ccc373a58ef1eb42f8ab88646a"
    );
    let empty = data_hash(&Object::ConfigMap(ConfigMap::default())).unwrap();
    assert_eq!(
        empty, "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha1 of nothing"
    );
}

#[test]
fn auto_reloads_a_container_using_the_configmap() {
    let mut user = container("app");
    user.env_from = Some(vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: "hello-config".into(),
            optional: None,
        }),
        ..Default::default()
    }]);
    let pod = PodSpec {
        containers: vec![container("sidecar"), user],
        ..Default::default()
    };
    let d = deployment(&[(AUTO, "true")], pod);
    let t = reloaded_template(&d, &CHANGE).unwrap();
    assert_eq!(
        env_of(&t, 1),
        [(
            "STAKATER_HELLO_CONFIG_CONFIGMAP".to_owned(),
            "abc".to_owned()
        )]
    );
    assert!(env_of(&t, 0).is_empty());
    // Same hash again: nothing to do.
    let mut again = d.clone();
    again.spec.as_mut().unwrap().template = t;
    assert!(reloaded_template(&again, &CHANGE).is_none());
    // An unrelated ConfigMap does not reload an auto Deployment.
    let other = Change {
        name: "other",
        ..CHANGE
    };
    assert!(reloaded_template(&d, &other).is_none());
}

#[test]
fn auto_through_volumes_and_key_refs() {
    let mut app = container("app");
    app.volume_mounts = Some(vec![VolumeMount {
        name: "config".into(),
        mount_path: "/etc/hostbot".into(),
        ..Default::default()
    }]);
    let pod = PodSpec {
        containers: vec![container("first"), app],
        volumes: Some(vec![Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "hello-config".into(),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let t = reloaded_template(&deployment(&[(AUTO, "true")], pod), &CHANGE).unwrap();
    assert_eq!(env_of(&t, 1).len(), 1);

    let mut keyed = container("app");
    keyed.env = Some(vec![EnvVar {
        name: "PORT".into(),
        value: None,
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "hello-config".into(),
                key: "PORT".into(),
                optional: None,
            }),
            ..Default::default()
        }),
    }]);
    let pod = PodSpec {
        containers: vec![keyed],
        ..Default::default()
    };
    // The typed auto annotation on the pod template works too.
    let mut d = deployment(&[], pod);
    d.spec.as_mut().unwrap().template.metadata = Some(ObjectMeta {
        annotations: Some(BTreeMap::from([(
            "configmap.reloader.stakater.com/auto".to_owned(),
            "true".to_owned(),
        )])),
        ..Default::default()
    });
    let t = reloaded_template(&d, &CHANGE).unwrap();
    assert_eq!(env_of(&t, 0)[1].0, "STAKATER_HELLO_CONFIG_CONFIGMAP");
}

#[test]
fn explicit_names_use_the_first_container() {
    let pod = PodSpec {
        containers: vec![container("a"), container("b")],
        ..Default::default()
    };
    let d = deployment(
        &[("configmap.reloader.stakater.com/reload", "x, hello-config")],
        pod.clone(),
    );
    let t = reloaded_template(&d, &CHANGE).unwrap();
    assert_eq!(env_of(&t, 0)[0].1, "abc");
    let not_listed = deployment(
        &[("configmap.reloader.stakater.com/reload", "x")],
        pod.clone(),
    );
    assert!(reloaded_template(&not_listed, &CHANGE).is_none());
    let off = deployment(&[(AUTO, "false")], pod);
    assert!(reloaded_template(&off, &CHANGE).is_none());
    let secret = Change {
        source: Source::Secret,
        ..CHANGE
    };
    assert!(
        reloaded_template(&d, &secret).is_none(),
        "secret annotations differ"
    );
}
