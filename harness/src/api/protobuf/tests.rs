//! The decoder against bodies captured from the real kubectl 1.32 (`testdata/*.pb`, each the
//! request body of the `kubectl create ...` named in [`CAPTURED`], recorded by a logging proxy
//! in front of `harness up`), each compared with what the same command prints with
//! `--dry-run=client -o json` (`testdata/*.json`); then hand-built bodies for what kubectl's
//! create commands never send, and for the errors.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::decode;

/// Fixture name and the kubectl command line that sent it.
const CAPTURED: &[(&str, &str)] = &[
    (
        "deployment",
        "create deployment hello --image=kiamol/ch02-hello-kiamol",
    ),
    (
        "deployment-ports-replicas",
        "create deployment multi --image=nginx:1.27 --image=busybox --port=8080 --replicas=3",
    ),
    (
        "deployment-command",
        "create deployment cmd --image=busybox -- sleep 3600",
    ),
    (
        "deployment-zero-replicas",
        "create deployment zero --image=x --replicas=0",
    ),
    (
        "configmap-literals",
        "create configmap cm1 --from-literal=a=b --from-literal=c=d",
    ),
    (
        "configmap-files",
        "create configmap cm2 --from-file=cap-text.txt --from-file=bin=cap-bin.dat",
    ),
    (
        "configmap-env-file",
        "create configmap cm3 --from-env-file=cap.env",
    ),
    (
        "secret-generic",
        "create secret generic s1 --from-literal=user=admin --from-file=cap-bin.dat",
    ),
    (
        "secret-docker-registry",
        "create secret docker-registry reg --docker-username=u --docker-password=p \
         --docker-server=r.example.com",
    ),
    (
        "service-clusterip",
        "create service clusterip svc1 --tcp=80:8080 --tcp=443:8443",
    ),
    (
        "service-headless",
        "create service clusterip headless --clusterip=None",
    ),
    (
        "service-nodeport",
        "create service nodeport np --tcp=80:8080 --node-port=30080",
    ),
    (
        "service-loadbalancer",
        "create service loadbalancer lb --tcp=5678:8080",
    ),
    (
        "service-externalname",
        "create service externalname ext --external-name=example.com",
    ),
    ("namespace", "create namespace ns1"),
];

fn fixture(name: &str) -> (Vec<u8>, Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/protobuf/testdata");
    let body = std::fs::read(format!("{dir}/{name}.pb")).expect("fixture body");
    let json = std::fs::read(format!("{dir}/{name}.json")).expect("fixture JSON");
    (
        body,
        serde_json::from_slice(&json).expect("fixture JSON parses"),
    )
}

#[test]
fn captured_kubectl_bodies_decode_to_what_kubectl_prints_as_json() {
    for (name, command) in CAPTURED {
        let (body, expected) = fixture(name);
        let decoded = decode(&body).unwrap_or_else(|err| panic!("kubectl {command}: {err:?}"));
        assert_eq!(
            decoded,
            expected,
            "kubectl {command}:\n{}",
            serde_json::to_string_pretty(&decoded).unwrap()
        );
    }
}

#[test]
fn a_pointer_keeps_its_zero_and_a_value_field_drops_it() {
    let (body, _) = fixture("deployment-zero-replicas");
    let decoded = decode(&body).unwrap();
    assert_eq!(decoded["spec"]["replicas"], json!(0));
    assert!(decoded["spec"].get("minReadySeconds").is_none());
    assert!(decoded["metadata"].get("generation").is_none());
    assert_eq!(decoded["status"], json!({}));
}

#[test]
fn secret_bytes_become_base64() {
    let (body, _) = fixture("secret-generic");
    let decoded = decode(&body).unwrap();
    assert_eq!(decoded["data"]["user"], "YWRtaW4=");
    assert_eq!(decoded["data"]["cap-bin.dat"], "AAEC//4gYmluYXJ5");
}

/// A protobuf writer for hand-built bodies.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint_raw(mut self, mut v: u64) -> Pb {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return self;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn tag(self, number: u32, wire_type: u64) -> Pb {
        self.varint_raw((u64::from(number) << 3) | wire_type)
    }

    fn varint(self, number: u32, v: u64) -> Pb {
        self.tag(number, 0).varint_raw(v)
    }

    fn int(self, number: u32, v: i64) -> Pb {
        self.varint(number, v as u64)
    }

    fn bytes(self, number: u32, bytes: &[u8]) -> Pb {
        let mut pb = self.tag(number, 2).varint_raw(bytes.len() as u64);
        pb.0.extend_from_slice(bytes);
        pb
    }

    fn str(self, number: u32, s: &str) -> Pb {
        self.bytes(number, s.as_bytes())
    }

    fn msg(self, number: u32, inner: Pb) -> Pb {
        self.bytes(number, &inner.0)
    }

    fn entry(self, number: u32, key: &str, value: &str) -> Pb {
        self.msg(number, Pb::default().str(1, key).str(2, value))
    }
}

/// `k8s\0` and a `runtime.Unknown` around `raw`.
fn envelope(api_version: &str, kind: &str, raw: Pb) -> Vec<u8> {
    let unknown = Pb::default()
        .msg(1, Pb::default().str(1, api_version).str(2, kind))
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    [b"k8s\0".as_slice(), &unknown.0].concat()
}

fn meta(name: &str) -> Pb {
    Pb::default()
        .str(1, name)
        .str(3, "")
        .int(7, 0)
        .msg(8, Pb::default())
}

#[test]
fn a_pod_with_what_kubectl_create_never_sends() {
    let probe = Pb::default()
        .msg(
            1,
            Pb::default().msg(
                2,
                Pb::default()
                    .str(1, "/healthz")
                    // IntOrString {type: String, strVal: "http"}
                    .msg(2, Pb::default().varint(1, 1).int(2, 0).str(3, "http"))
                    .str(4, "HTTP"),
            ),
        )
        .int(2, 0)
        .int(4, 5)
        .int(6, 3);
    let container = Pb::default()
        .str(1, "web")
        .str(2, "hostbot")
        .str(4, "--port")
        .str(4, "8080")
        .msg(
            6,
            Pb::default()
                .str(1, "http")
                .int(2, 0)
                .int(3, 8080)
                .str(4, "TCP"),
        )
        .msg(
            7,
            Pb::default().str(1, "KEY").msg(
                3,
                Pb::default().msg(
                    3,
                    // ConfigMapKeySelector inlines LocalObjectReference {name}.
                    Pb::default()
                        .msg(1, Pb::default().str(1, "config"))
                        .str(2, "key")
                        .varint(3, 0),
                ),
            ),
        )
        .msg(
            8,
            Pb::default()
                .msg(
                    1,
                    Pb::default()
                        .str(1, "cpu")
                        .msg(2, Pb::default().str(1, "500m")),
                )
                .msg(
                    2,
                    Pb::default()
                        .str(1, "memory")
                        .msg(2, Pb::default().str(1, "64Mi")),
                ),
        )
        .msg(10, probe)
        .msg(
            15,
            Pb::default()
                .int(4, 0) // runAsUser: 0 is root, not unset
                .varint(6, 1),
        )
        .varint(16, 0);
    let volume = Pb::default().str(1, "config").msg(
        2,
        Pb::default().msg(
            19,
            Pb::default()
                .msg(1, Pb::default().str(1, "app-config"))
                .int(3, 0o644),
        ),
    );
    let spec = Pb::default()
        .msg(1, volume)
        .msg(2, container)
        .str(3, "Always")
        .int(4, 0) // terminationGracePeriodSeconds: 0 kept
        .varint(11, 0) // hostNetwork: false dropped
        .msg(
            14,
            // supplementalGroups packed, then one more unpacked
            Pb::default().bytes(4, &[1, 2]).int(4, 3).int(5, -1),
        );
    let metadata = meta("web")
        .entry(11, "app", "web")
        .entry(12, "note", "")
        .msg(8, Pb::default().int(1, 1_700_000_000).int(2, 123))
        .msg(
            13,
            Pb::default()
                .str(1, "ReplicaSet")
                .str(3, "web-abc")
                .str(4, "uid-1")
                .str(5, "apps/v1")
                .varint(6, 1)
                .varint(7, 1),
        )
        .msg(
            17,
            Pb::default()
                .str(1, "kubectl")
                .str(2, "Update")
                .msg(4, Pb::default().int(1, 0))
                .msg(7, Pb::default().bytes(1, br#"{"f:metadata":{}}"#)),
        );
    let body = envelope(
        "v1",
        "Pod",
        Pb::default()
            .msg(1, metadata)
            .msg(2, spec)
            .msg(3, Pb::default().str(1, "")),
    );
    let decoded = decode(&body).unwrap();
    assert_eq!(
        decoded,
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": "web",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "labels": {"app": "web"},
                "annotations": {"note": ""},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                    "uid": "uid-1", "controller": true, "blockOwnerDeletion": true,
                }],
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update",
                    "time": "1970-01-01T00:00:00Z", "fieldsV1": {"f:metadata": {}},
                }],
            },
            "spec": {
                "volumes": [{"name": "config", "configMap": {"name": "app-config", "defaultMode": 420}}],
                "containers": [{
                    "name": "web",
                    "image": "hostbot",
                    "args": ["--port", "8080"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "KEY", "valueFrom": {"configMapKeyRef": {
                        "name": "config", "key": "key", "optional": false,
                    }}}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "periodSeconds": 5,
                        "failureThreshold": 3,
                    },
                    "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true},
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"supplementalGroups": [1, 2, 3], "fsGroup": -1},
            },
            "status": {},
        })
    );
}

#[test]
fn an_event_has_micro_time_and_a_service_port_may_name_its_target() {
    let event = envelope(
        "v1",
        "Event",
        Pb::default()
            .msg(1, meta("web.1"))
            .msg(2, Pb::default().str(1, "Pod").str(3, "web"))
            .msg(10, Pb::default().int(1, 1_700_000_000).int(2, 123_456_789)),
    );
    let decoded = decode(&event).unwrap();
    assert_eq!(decoded["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(
        decoded["involvedObject"],
        json!({"kind": "Pod", "name": "web"})
    );

    let service = envelope(
        "v1",
        "Service",
        Pb::default().msg(1, meta("web")).msg(
            2,
            Pb::default().msg(
                1,
                Pb::default()
                    .int(3, 80)
                    .msg(4, Pb::default().varint(1, 1).str(3, "http")),
            ),
        ),
    );
    let decoded = decode(&service).unwrap();
    assert_eq!(
        decoded["spec"]["ports"],
        json!([{"port": 80, "targetPort": "http"}])
    );
}

#[test]
fn an_unknown_field_is_a_415_naming_message_number_and_place() {
    let container = Pb::default().str(1, "web").str(99, "?");
    let body = envelope(
        "apps/v1",
        "Deployment",
        Pb::default().msg(1, meta("web")).msg(
            2,
            Pb::default().msg(3, Pb::default().msg(2, Pb::default().msg(2, container))),
        ),
    );
    let err = decode(&body).unwrap_err();
    assert_eq!(err.code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        err.message,
        "the harness cannot decode this protobuf body: field 99 (length-delimited) of \
         k8s.io.api.core.v1.Container is not known to its protobuf decoder (at \
         spec.template.spec.containers[0]); send the object as JSON (application/json) instead"
    );
}

#[test]
fn a_legacy_volume_plugin_is_refused_by_number() {
    let nfs = Pb::default().str(1, "data").msg(
        2,
        Pb::default().msg(7, Pb::default().str(1, "server").str(2, "/export")),
    );
    let body = envelope(
        "v1",
        "Pod",
        Pb::default()
            .msg(1, meta("web"))
            .msg(2, Pb::default().msg(1, nfs)),
    );
    let err = decode(&body).unwrap_err();
    assert_eq!(err.code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        err.message
            .contains("field 7 (length-delimited) of k8s.io.api.core.v1.VolumeSource"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("(at spec.volumes[0])"),
        "{}",
        err.message
    );
}

#[test]
fn kinds_without_a_table_and_other_envelopes_are_415() {
    let cases = [
        envelope("apps/v1", "StatefulSet", Pb::default()),
        [
            b"k8s\0".as_slice(),
            &Pb::default()
                .msg(1, Pb::default().str(1, "v1").str(2, "ConfigMap"))
                .str(3, "gzip")
                .0,
        ]
        .concat(),
        [
            b"k8s\0".as_slice(),
            &Pb::default()
                .msg(1, Pb::default().str(1, "v1").str(2, "ConfigMap"))
                .str(4, "application/json")
                .0,
        ]
        .concat(),
    ];
    for body in cases {
        let err = decode(&body).unwrap_err();
        assert_eq!(
            err.code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{}",
            err.message
        );
    }
}

#[test]
fn malformed_bodies_are_400_not_panics() {
    let (deployment, _) = fixture("deployment");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"kind\":\"Pod\"}".to_vec(), "prefix"),
        (
            deployment[..deployment.len() / 2].to_vec(),
            "ends in the middle",
        ),
        (
            envelope(
                "apps/v1",
                "Deployment",
                Pb::default().msg(2, Pb::default().str(1, "three")),
            ),
            "field 1 (replicas) of k8s.io.api.apps.v1.DeploymentSpec has the length-delimited \
             wire type, expected varint (at spec.replicas)",
        ),
        (
            envelope(
                "apps/v1",
                "Deployment",
                Pb::default().msg(2, Pb::default().varint(2, 1)),
            ),
            "field 2 (selector) of k8s.io.api.apps.v1.DeploymentSpec has the varint wire type",
        ),
        (
            envelope(
                "v1",
                "ConfigMap",
                Pb::default().msg(1, Pb::default().msg(8, Pb::default().int(1, i64::MAX))),
            ),
            "out of range",
        ),
    ];
    for (body, expected) in cases {
        let err = decode(&body).unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST, "{}", err.message);
        assert!(err.message.contains(expected), "{}", err.message);
    }
    // Every prefix of a real body is an error or a (partial) object, never a panic.
    for end in 0..deployment.len() {
        let _ = decode(&deployment[..end]);
    }
}
