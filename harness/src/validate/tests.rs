//! Table tests: each case changes a valid object in one way and lists every cause the API
//! server reports for it (field, and the message or its beginning). An empty list means valid.

use serde_json::{Value, json};

use super::*;
use crate::defaults;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hostbot", "namespace": "default", "labels": {"app": "hostbot"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "hostbot"}},
            "template": {
                "metadata": {"labels": {"app": "hostbot"}},
                "spec": {
                    "containers": [{
                        "name": "hostbot",
                        "image": "hostbot:1.0",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "PORT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "PORT"}}}],
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                        "livenessProbe": {"tcpSocket": {"port": 8080}},
                        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "cfg"}}]
                }
            }
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "hostbot", "namespace": "default"},
        "spec": {"selector": {"app": "hostbot"}, "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

/// Sets each JSON pointer to a value; `null` removes the field.
fn with<P: AsRef<str>>(mut value: Value, patches: &[(P, Value)]) -> Value {
    for (pointer, new) in patches {
        let pointer = pointer.as_ref();
        let (parent, last) = pointer.rsplit_once('/').expect("pointer has a slash");
        let target = value
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        match (target, new) {
            (Value::Object(map), Value::Null) => {
                map.remove(last);
            }
            (Value::Object(map), new) => {
                map.insert(last.to_owned(), new.clone());
            }
            (Value::Array(list), new) => list[last.parse::<usize>().unwrap()] = new.clone(),
            _ => panic!("cannot patch {pointer}"),
        }
    }
    value
}

fn object(value: Value) -> Object {
    let kind = Kind::from_type_meta(
        value["apiVersion"].as_str().unwrap(),
        value["kind"].as_str().unwrap(),
    )
    .unwrap();
    let mut object = Object::from_json(kind, value).expect("fixture parses");
    defaults::apply(&mut object);
    object
}

/// A case: its name, the patches to a valid object, and the causes expected.
type Case<P> = (
    &'static str,
    Vec<(P, Value)>,
    Vec<(&'static str, &'static str)>,
);

fn check(name: &str, got: Vec<(String, String)>, want: &[(&str, &str)]) {
    let ok = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((f, m), (wf, wm))| f == wf && m.starts_with(wm));
    assert!(ok, "{name}:\n got: {got:#?}\nwant: {want:#?}");
}

#[test]
fn valid_objects_have_no_causes() {
    let fixtures = [
        deployment(),
        service(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"}, "data": {"PORT": "8081", "myconfig.txt": "I am hungry."}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "stringData": {"password": "x"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostbot", "namespace": "default"}, "spec": {"containers": [{"name": "hostbot", "image": "hostbot"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "hostbot-775855699b", "namespace": "default"}, "spec": {
            "selector": {"matchLabels": {"app": "hostbot", "pod-template-hash": "775855699b"}},
            "template": {"metadata": {"labels": {"app": "hostbot", "pod-template-hash": "775855699b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        }}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np", "namespace": "default"}, "spec": {
            "type": "NodePort", "selector": {"app": "nginx"},
            "ports": [{"name": "http-port", "protocol": "TCP", "nodePort": 30080, "port": 80, "targetPort": 80}]
        }}),
    ];
    for fixture in fixtures {
        let name = format!("{} {}", fixture["kind"], fixture["metadata"]["name"]);
        check(&name, validate(&object(fixture), None), &[]);
    }
}

#[test]
fn deployment_rules() {
    let t = "/spec/template/spec";
    let c = "/spec/template/spec/containers/0";
    let cases: Vec<Case<String>> = vec![
        (
            "negative replicas",
            vec![("/spec/replicas".to_string(), json!(-1))],
            vec![(
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            )],
        ),
        (
            "selector typo",
            vec![(
                "/spec/template/metadata/labels".to_string(),
                json!({"app": "hostbot-typo"}),
            )],
            vec![(
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"hostbot-typo\"}: `selector` does not match template `labels`",
            )],
        ),
        (
            "no template labels",
            vec![("/spec/template/metadata".to_string(), Value::Null)],
            vec![(
                "spec.template.metadata.labels",
                "Invalid value: map[string]string(nil): `selector` does not match template `labels`",
            )],
        ),
        (
            "missing selector",
            vec![("/spec/selector".to_string(), Value::Null)],
            vec![
                ("spec.selector", "Required value"),
                (
                    "spec.template.metadata.labels",
                    "Invalid value: map[string]string{\"app\":\"hostbot\"}: `selector` does not match",
                ),
            ],
        ),
        (
            "empty selector",
            vec![("/spec/selector".to_string(), json!({"matchLabels": {}}))],
            vec![(
                "spec.selector",
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
            )],
        ),
        (
            "both zero",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
            )],
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            )],
        ),
        (
            "both zero percent",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}}),
            )],
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0",
            )],
        ),
        (
            "surge 0 is fine with default unavailable",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxSurge": 0}}),
            )],
            vec![],
        ),
        (
            "unavailable over 100%",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxUnavailable": "150%"}}),
            )],
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
            )],
        ),
        (
            "surge 100% is fine",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxSurge": "100%"}}),
            )],
            vec![],
        ),
        (
            "bad percent",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxSurge": "25"}}),
            )],
            vec![(
                "spec.strategy.rollingUpdate.maxSurge",
                "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"25\"}: a valid percent string must be a numeric string followed by an ending '%'",
            )],
        ),
        (
            "negative surge",
            vec![(
                "/spec/strategy".to_string(),
                json!({"rollingUpdate": {"maxSurge": -1}}),
            )],
            vec![(
                "spec.strategy.rollingUpdate.maxSurge",
                "Invalid value: -1: must be greater than or equal to 0",
            )],
        ),
        (
            "recreate with rollingUpdate",
            vec![(
                "/spec/strategy".to_string(),
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
            )],
            vec![(
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )],
        ),
        (
            "unknown strategy",
            vec![("/spec/strategy".to_string(), json!({"type": "BlueGreen"}))],
            vec![(
                "spec.strategy.type",
                "Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\"",
            )],
        ),
        (
            "progress deadline",
            vec![("/spec/minReadySeconds".to_string(), json!(700))],
            vec![(
                "spec.progressDeadlineSeconds",
                "Invalid value: 600: must be greater than minReadySeconds",
            )],
        ),
        (
            "restartPolicy Never",
            vec![(format!("{t}/restartPolicy"), json!("Never"))],
            vec![(
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Never\": supported values: \"Always\"",
            )],
        ),
        (
            "no containers",
            vec![(format!("{t}/containers"), json!([]))],
            vec![("spec.template.spec.containers", "Required value")],
        ),
        (
            "bad name",
            vec![("/metadata/name".to_string(), json!("Hello_Server"))],
            vec![(
                "metadata.name",
                "Invalid value: \"Hello_Server\": a lowercase RFC 1123 subdomain must consist of",
            )],
        ),
        (
            "bad label key",
            vec![("/metadata/labels".to_string(), json!({"-app": "x"}))],
            vec![(
                "metadata.labels",
                "Invalid value: \"-app\": name part must consist of",
            )],
        ),
        (
            "long label value",
            vec![(
                "/spec/template/metadata/labels/tier".to_string(),
                json!("x".repeat(64)),
            )],
            vec![("spec.template.metadata.labels", "Invalid value: \"xxxxxxxx")],
        ),
        (
            "container name missing",
            vec![(format!("{c}/name"), json!(""))],
            vec![("spec.template.spec.containers[0].name", "Required value")],
        ),
        (
            "container name not a label",
            vec![(format!("{c}/name"), json!("Host_Bot"))],
            vec![(
                "spec.template.spec.containers[0].name",
                "Invalid value: \"Host_Bot\": a lowercase RFC 1123 label",
            )],
        ),
        (
            "image missing",
            vec![(format!("{c}/image"), Value::Null)],
            vec![("spec.template.spec.containers[0].image", "Required value")],
        ),
        (
            "containerPort 0",
            vec![(format!("{c}/ports"), json!([{"containerPort": 0}]))],
            vec![(
                "spec.template.spec.containers[0].ports[0].containerPort",
                "Required value",
            )],
        ),
        (
            "containerPort too big",
            vec![(
                format!("{c}/ports"),
                json!([{"name": "http", "containerPort": 70000}]),
            )],
            vec![(
                "spec.template.spec.containers[0].ports[0].containerPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            )],
        ),
        (
            "duplicate port names",
            vec![(
                format!("{c}/ports"),
                json!([{"name": "http", "containerPort": 8080}, {"name": "http", "containerPort": 8081}]),
            )],
            vec![(
                "spec.template.spec.containers[0].ports[1].name",
                "Duplicate value: \"http\"",
            )],
        ),
        (
            "port name upper case",
            vec![(
                format!("{c}/ports"),
                json!([{"name": "http", "containerPort": 8080}, {"name": "Admin", "containerPort": 9090}]),
            )],
            vec![(
                "spec.template.spec.containers[0].ports[1].name",
                "Invalid value: \"Admin\": must contain only alpha-numeric characters",
            )],
        ),
        (
            "protocol lower case",
            vec![(
                format!("{c}/ports"),
                json!([{"name": "http", "containerPort": 8080, "protocol": "tcp"}]),
            )],
            vec![(
                "spec.template.spec.containers[0].ports[0].protocol",
                "Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            )],
        ),
        (
            "env name with =",
            vec![(format!("{c}/env"), json!([{"name": "A=B", "value": "x"}]))],
            vec![(
                "spec.template.spec.containers[0].env[0].name",
                "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            )],
        ),
        (
            "env name empty",
            vec![(format!("{c}/env"), json!([{"name": "", "value": "x"}]))],
            vec![
                (
                    "spec.template.spec.containers[0].env[0].name",
                    "Required value",
                ),
                (
                    "spec.template.spec.containers[0].env[0].name",
                    "Invalid value: \"\": environment variable name must be non-empty",
                ),
            ],
        ),
        (
            "env value and valueFrom",
            vec![(format!("{c}/env/0/value"), json!("8080"))],
            vec![(
                "spec.template.spec.containers[0].env[0].valueFrom",
                "Invalid value: \"\": may not be specified when `value` is not empty",
            )],
        ),
        (
            "configMapKeyRef without key",
            vec![(
                format!("{c}/env/0/valueFrom/configMapKeyRef/key"),
                json!(""),
            )],
            vec![(
                "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
                "Required value",
            )],
        ),
        (
            "mount of a missing volume",
            vec![(format!("{t}/volumes"), json!([]))],
            vec![(
                "spec.template.spec.containers[0].volumeMounts[0].name",
                "Not found: \"config\"",
            )],
        ),
        (
            "duplicate mount path",
            vec![(
                format!("{c}/volumeMounts"),
                json!([{"name": "config", "mountPath": "/etc/config"}, {"name": "config", "mountPath": "/etc/config"}]),
            )],
            vec![(
                "spec.template.spec.containers[0].volumeMounts[1].mountPath",
                "Invalid value: \"/etc/config\": must be unique",
            )],
        ),
        (
            "duplicate volume",
            vec![(
                format!("{t}/volumes"),
                json!([{"name": "config", "configMap": {"name": "a"}}, {"name": "config", "emptyDir": {}}]),
            )],
            vec![(
                "spec.template.spec.volumes[1].name",
                "Duplicate value: \"config\"",
            )],
        ),
        (
            "two volume sources",
            vec![(format!("{t}/volumes/0/emptyDir"), json!({}))],
            vec![(
                "spec.template.spec.volumes[0].emptyDir",
                "Forbidden: may not specify more than 1 volume type",
            )],
        ),
        (
            "defaultMode too big",
            vec![(format!("{t}/volumes/0/configMap/defaultMode"), json!(1000))],
            vec![(
                "spec.template.spec.volumes[0].configMap.defaultMode",
                "Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
            )],
        ),
        (
            "probe without handler",
            vec![(format!("{c}/livenessProbe"), json!({"periodSeconds": 5}))],
            vec![(
                "spec.template.spec.containers[0].livenessProbe",
                "Required value: must specify a handler type",
            )],
        ),
        (
            "probe with two handlers",
            vec![(format!("{c}/livenessProbe/httpGet"), json!({"port": 8080}))],
            vec![(
                "spec.template.spec.containers[0].livenessProbe.tcpSocket",
                "Forbidden: may not specify more than 1 handler type",
            )],
        ),
        (
            "liveness successThreshold",
            vec![(format!("{c}/livenessProbe/successThreshold"), json!(2))],
            vec![(
                "spec.template.spec.containers[0].livenessProbe.successThreshold",
                "Invalid value: 2: must be 1",
            )],
        ),
        (
            "readiness successThreshold may be 2",
            vec![(format!("{c}/readinessProbe/successThreshold"), json!(2))],
            vec![],
        ),
        (
            "negative period",
            vec![(format!("{c}/readinessProbe/periodSeconds"), json!(-5))],
            vec![(
                "spec.template.spec.containers[0].readinessProbe.periodSeconds",
                "Invalid value: -5: must be greater than or equal to 0",
            )],
        ),
        (
            "probe port name",
            vec![(format!("{c}/readinessProbe/httpGet/port"), json!("HTTP"))],
            vec![
                (
                    "spec.template.spec.containers[0].readinessProbe.httpGet.port",
                    "Invalid value: \"HTTP\": must contain only",
                ),
                (
                    "spec.template.spec.containers[0].readinessProbe.httpGet.port",
                    "Invalid value: \"HTTP\": must contain at least one letter",
                ),
            ],
        ),
        (
            "probe scheme",
            vec![(format!("{c}/readinessProbe/httpGet/scheme"), json!("FTP"))],
            vec![(
                "spec.template.spec.containers[0].readinessProbe.httpGet.scheme",
                "Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
            )],
        ),
        (
            "requests above limits",
            vec![(format!("{c}/resources/requests/cpu"), json!("2"))],
            vec![(
                "spec.template.spec.containers[0].resources.requests",
                "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            )],
        ),
        (
            "bad quantity",
            vec![(format!("{c}/resources/limits/memory"), json!("64MB"))],
            vec![(
                "spec.template.spec.containers[0].resources.limits[memory]",
                "Invalid value: \"64MB\": quantities must match the regular expression",
            )],
        ),
        (
            "unknown resource",
            vec![(format!("{c}/resources/limits/cpus"), json!("1"))],
            vec![(
                "spec.template.spec.containers[0].resources.limits[cpus]",
                "Invalid value: \"cpus\": must be a standard resource for containers",
            )],
        ),
    ];
    for (name, patches, want) in cases {
        let patched = with(deployment(), &patches);
        check(name, validate(&object(patched), None), &want);
    }
}

#[test]
fn duplicate_container_names() {
    let mut d = deployment();
    let first = d["spec"]["template"]["spec"]["containers"][0].clone();
    d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(first);
    check(
        "duplicate",
        validate(&object(d), None),
        &[(
            "spec.template.spec.containers[1].name",
            "Duplicate value: \"hostbot\"",
        )],
    );
}

#[test]
fn service_rules() {
    let cases: Vec<Case<&str>> = vec![
        (
            "name starts with a digit",
            vec![("/metadata/name", json!("1web"))],
            vec![(
                "metadata.name",
                "Invalid value: \"1web\": a DNS-1035 label must consist of",
            )],
        ),
        (
            "no ports",
            vec![("/spec/ports", json!([]))],
            vec![("spec.ports", "Required value")],
        ),
        (
            "headless without ports",
            vec![
                ("/spec/ports", json!([])),
                ("/spec/clusterIP", json!("None")),
            ],
            vec![],
        ),
        (
            "port 0",
            vec![("/spec/ports", json!([{"port": 0, "targetPort": 8080}]))],
            vec![(
                "spec.ports[0].port",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            )],
        ),
        (
            "targetPort too big",
            vec![("/spec/ports/0/targetPort", json!(70000))],
            vec![(
                "spec.ports[0].targetPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            )],
        ),
        (
            "targetPort name",
            vec![("/spec/ports/0/targetPort", json!("http"))],
            vec![],
        ),
        (
            "targetPort bad name",
            vec![("/spec/ports/0/targetPort", json!("http--x"))],
            vec![(
                "spec.ports[0].targetPort",
                "Invalid value: \"http--x\": must not contain consecutive hyphens",
            )],
        ),
        (
            "unnamed ports",
            vec![("/spec/ports", json!([{"port": 80}, {"port": 443}]))],
            vec![
                ("spec.ports[0].name", "Required value"),
                ("spec.ports[1].name", "Required value"),
            ],
        ),
        (
            "duplicate names",
            vec![(
                "/spec/ports",
                json!([{"name": "web", "port": 80}, {"name": "web", "port": 443}]),
            )],
            vec![("spec.ports[1].name", "Duplicate value: \"web\"")],
        ),
        (
            "duplicate port",
            vec![(
                "/spec/ports",
                json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
            )],
            vec![("spec.ports[1]", "Duplicate value: core.ServicePort{")],
        ),
        (
            "nodePort on ClusterIP",
            vec![("/spec/ports/0/nodePort", json!(30080))],
            vec![(
                "spec.ports[0].nodePort",
                "Forbidden: may not be used when `type` is 'ClusterIP'",
            )],
        ),
        (
            "nodePort out of range",
            vec![
                ("/spec/type", json!("NodePort")),
                ("/spec/ports/0/nodePort", json!(8080)),
            ],
            vec![(
                "spec.ports[0].nodePort",
                "Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
            )],
        ),
        (
            "unknown type",
            vec![("/spec/type", json!("Ingress"))],
            vec![(
                "spec.type",
                "Unsupported value: \"Ingress\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            )],
        ),
        (
            "bad selector",
            vec![("/spec/selector", json!({"app": "hello server"}))],
            vec![(
                "spec.selector",
                "Invalid value: \"hello server\": a valid label must be",
            )],
        ),
        (
            "bad clusterIP",
            vec![("/spec/clusterIP", json!("10.96.0"))],
            vec![(
                "spec.clusterIP",
                "Invalid value: \"10.96.0\": must be a valid IP address",
            )],
        ),
        (
            "protocol",
            vec![("/spec/ports/0/protocol", json!("HTTP"))],
            vec![("spec.ports[0].protocol", "Unsupported value: \"HTTP\"")],
        ),
    ];
    for (name, patches, want) in cases {
        check(
            name,
            validate(&object(with(service(), &patches)), None),
            &want,
        );
    }
}

#[test]
fn other_kinds() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"a/b": "x", "same": "y"}, "binaryData": {"same": "eQ=="}});
    check(
        "configmap",
        validate(&object(cm), None),
        &[
            (
                "data[a/b]",
                "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters",
            ),
            (
                "data[same]",
                "Invalid value: \"same\": duplicate of key present in binaryData",
            ),
            (
                "binaryData[same]",
                "Invalid value: \"same\": duplicate of key present in data",
            ),
        ],
    );
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    check(
        "tls secret",
        validate(&object(tls), None),
        &[("data[tls.key]", "Required value")],
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Shop"}});
    check(
        "namespace",
        validate(&object(ns), None),
        &[(
            "metadata.name",
            "Invalid value: \"Shop\": a lowercase RFC 1123 label must consist of",
        )],
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"restartPolicy": "Sometimes", "activeDeadlineSeconds": 0, "containers": [{"name": "c", "image": "i", "imagePullPolicy": "Sometimes"}]}});
    check(
        "pod",
        validate(&object(pod), None),
        &[
            (
                "spec.containers[0].imagePullPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ),
            (
                "spec.restartPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\"",
            ),
            (
                "spec.activeDeadlineSeconds",
                "Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ),
        ],
    );
    let no_name =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}});
    check(
        "no name",
        validate(&object(no_name), None),
        &[(
            "metadata.name",
            "Required value: name or generateName is required",
        )],
    );
}

fn update(old: Value, new: Value) -> Vec<(String, String)> {
    validate(&object(new), Some(&object(old)))
}

#[test]
fn immutable_fields() {
    let d = deployment();
    check(
        "image change",
        update(
            d.clone(),
            with(
                d.clone(),
                &[(
                    "/spec/template/spec/containers/0/image",
                    json!("hostbot:2.0"),
                )],
            ),
        ),
        &[],
    );
    let moved = with(
        d.clone(),
        &[
            ("/spec/selector/matchLabels", json!({"app": "other"})),
            ("/spec/template/metadata/labels", json!({"app": "other"})),
        ],
    );
    check(
        "deployment selector",
        update(d.clone(), moved),
        &[(
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        )],
    );
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b", "c": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    }});
    let narrowed = with(
        rs.clone(),
        &[("/spec/selector/matchLabels", json!({"a": "b", "c": "d"}))],
    );
    check(
        "replicaset selector",
        update(rs.clone(), narrowed),
        &[("spec.selector", "Invalid value: v1.LabelSelector{")],
    );
    check(
        "replicaset scale",
        update(rs.clone(), with(rs, &[("/spec/replicas", json!(5))])),
        &[],
    );

    let allocated = with(service(), &[("/spec/clusterIP", json!("10.96.0.10"))]);
    check("same ip", update(allocated.clone(), allocated.clone()), &[]);
    check("ip left empty", update(allocated.clone(), service()), &[]);
    check(
        "ip changed",
        update(
            allocated.clone(),
            with(service(), &[("/spec/clusterIP", json!("10.96.0.11"))]),
        ),
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: \"10.96.0.11\": may not change once set",
        )],
    );

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "immutable": true, "data": {"a": "1"}});
    check(
        "immutable configmap",
        update(cm.clone(), with(cm.clone(), &[("/data/a", json!("2"))])),
        &[(
            "data",
            "Forbidden: field is immutable when `immutable` is set",
        )],
    );
    check(
        "immutable flag dropped",
        update(cm.clone(), with(cm, &[("/immutable", Value::Null)])),
        &[(
            "immutable",
            "Forbidden: field is immutable when `immutable` is set",
        )],
    );
}

#[test]
fn pod_updates_may_only_change_images() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "i:1", "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 80}]}]}});
    let ok = [
        with(pod.clone(), &[("/spec/containers/0/image", json!("i:2"))]),
        with(pod.clone(), &[("/metadata/labels", json!({"app": "b"}))]),
        with(pod.clone(), &[("/status", json!({"phase": "Running"}))]),
        with(pod.clone(), &[("/spec/nodeName", json!("harness"))]),
        with(pod.clone(), &[("/spec/activeDeadlineSeconds", json!(30))]),
        with(
            pod.clone(),
            &[(
                "/spec/tolerations",
                json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
            )],
        ),
    ];
    for new in ok {
        check("allowed pod update", update(pod.clone(), new), &[]);
    }
    let ports = update(
        pod.clone(),
        with(
            pod.clone(),
            &[("/spec/containers/0/ports/0/containerPort", json!(81))],
        ),
    );
    check(
        "port change",
        ports.clone(),
        &[(
            "spec",
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`",
        )],
    );
    assert!(
        ports[0]
            .1
            .contains("spec.containers[0].ports[0].containerPort"),
        "{}",
        ports[0].1
    );
    let placed = with(pod.clone(), &[("/spec/nodeName", json!("a"))]);
    check(
        "node change",
        update(
            placed.clone(),
            with(pod.clone(), &[("/spec/nodeName", json!("b"))]),
        ),
        &[("spec", "Forbidden: pod updates")],
    );
    let deadline = with(pod.clone(), &[("/spec/activeDeadlineSeconds", json!(30))]);
    check(
        "deadline raised",
        update(
            deadline,
            with(pod.clone(), &[("/spec/activeDeadlineSeconds", json!(60))]),
        ),
        &[(
            "spec.activeDeadlineSeconds",
            "Invalid value: 60: must be less than or equal to previous value",
        )],
    );
    check(
        "image removed",
        update(
            pod.clone(),
            with(pod, &[("/spec/containers/0/image", json!(""))]),
        ),
        &[("spec.containers[0].image", "Required value")],
    );
}
