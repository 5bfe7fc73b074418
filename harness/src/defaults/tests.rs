use serde_json::{Value, json};

use super::*;
use crate::object::Kind;

fn defaulted(kind: Kind, value: Value) -> Value {
    let mut object = Object::from_json(kind, value).expect("fixture parses");
    apply(&mut object);
    let once = object.clone();
    apply(&mut object);
    assert_eq!(object, once, "defaulting must be idempotent");
    object.to_json()
}

fn deployment(extra_spec: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "hello-server"}},
        "template": {
            "metadata": {"labels": {"app": "hello-server"}},
            "spec": {"containers": [{"name": "hello-server", "image": "blux2/hello-server:1.4"}]}
        }
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra_spec.as_object().unwrap().clone());
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello-server"}, "spec": spec})
}

#[test]
fn deployment_matches_what_a_real_cluster_shows() {
    // The spec of `kubectl get deployment hello-server -o yaml` in the seed tutorial 004.
    let got = defaulted(
        Kind::Deployment,
        deployment(json!({"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": 0}}})),
    );
    let want = json!({
        "progressDeadlineSeconds": 600,
        "replicas": 1,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": "hello-server"}},
        "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}, "type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": {"app": "hello-server"}},
            "spec": {
                "containers": [{
                    "image": "blux2/hello-server:1.4",
                    "imagePullPolicy": "IfNotPresent",
                    "name": "hello-server",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30
            }
        }
    });
    assert_eq!(got["spec"], want);
}

#[test]
fn deployment_strategy_defaults() {
    let bare = defaulted(Kind::Deployment, deployment(json!({})));
    assert_eq!(bare["spec"]["replicas"], 1);
    assert_eq!(
        bare["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let recreate = defaulted(
        Kind::Deployment,
        deployment(json!({"strategy": {"type": "Recreate"}})),
    );
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    let surge = defaulted(
        Kind::Deployment,
        deployment(json!({"replicas": 10, "strategy": {"rollingUpdate": {"maxSurge": "100%"}}})),
    );
    assert_eq!(
        surge["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": "100%", "maxUnavailable": "25%"})
    );
    assert_eq!(surge["spec"]["replicas"], 10);
    let rs = defaulted(
        Kind::ReplicaSet,
        json!({
            "metadata": {"name": "rs"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }),
    );
    assert_eq!(rs["spec"]["replicas"], 1);
    assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");
}

#[test]
fn image_pull_policy_follows_the_tag() {
    let cases = [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25.3", "IfNotPresent"),
        ("localhost:5000/hostbot", "Always"),
        ("localhost:5000/hostbot:v2", "IfNotPresent"),
        ("nginx@sha256:0123abcd", "IfNotPresent"),
        (
            "docker.io/library/nginx:1.24.0@sha256:0123abcd",
            "IfNotPresent",
        ),
    ];
    for (image, want) in cases {
        let pod = defaulted(
            Kind::Pod,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"], want,
            "{image}"
        );
    }
    let explicit = defaulted(
        Kind::Pod,
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never"}]}}),
    );
    assert_eq!(
        explicit["spec"]["containers"][0]["imagePullPolicy"],
        "Never"
    );
}

#[test]
fn probes_ports_env_and_lifecycle() {
    let pod = defaulted(
        Kind::Pod,
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{
            "name": "c", "image": "hostbot:1",
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
            "livenessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 5},
            "startupProbe": {"grpc": {"port": 9000}},
            "lifecycle": {"preStop": {"httpGet": {"port": 8080}}},
            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        }]}}),
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["ports"][0],
        json!({"containerPort": 8080, "protocol": "TCP"})
    );
    assert_eq!(
        c["readinessProbe"],
        json!({
            "httpGet": {"path": "/readyz", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
        })
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/");
    assert_eq!(c["livenessProbe"]["periodSeconds"], 5);
    assert_eq!(
        c["startupProbe"]["grpc"],
        json!({"port": 9000, "service": ""})
    );
    assert_eq!(
        c["lifecycle"]["preStop"]["httpGet"],
        json!({"path": "/", "port": 8080, "scheme": "HTTP"})
    );
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert!(c["livenessProbe"].get("initialDelaySeconds").is_none());
}

#[test]
fn pods_get_more_than_templates() {
    let container = json!({"name": "c", "image": "i:1", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}});
    let pod = defaulted(
        Kind::Pod,
        json!({"metadata": {"name": "p"}, "spec": {"containers": [container]}}),
    );
    assert_eq!(pod["spec"]["enableServiceLinks"], true);
    assert_eq!(pod["spec"]["priority"], 0);
    assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert_eq!(pod["spec"]["serviceAccount"], "default");
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "100m", "memory": "64Mi"})
    );
    let deploy = defaulted(
        Kind::Deployment,
        json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [container]}}
        }}),
    );
    let spec = &deploy["spec"]["template"]["spec"];
    for field in [
        "enableServiceLinks",
        "priority",
        "preemptionPolicy",
        "serviceAccountName",
        "serviceAccount",
    ] {
        assert!(spec.get(field).is_none(), "{field} in a template");
    }
    assert_eq!(
        spec["containers"][0]["resources"]["requests"],
        json!({"cpu": "100m"})
    );
}

#[test]
fn service_account_name_wins_over_the_deprecated_field() {
    let pod = |spec: Value| {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "i:1"}]);
        let pod = defaulted(Kind::Pod, json!({"metadata": {"name": "p"}, "spec": spec}));
        (
            pod["spec"]["serviceAccountName"].clone(),
            pod["spec"]["serviceAccount"].clone(),
        )
    };
    assert_eq!(
        pod(json!({"serviceAccountName": "a"})),
        (json!("a"), json!("a"))
    );
    assert_eq!(
        pod(json!({"serviceAccount": "b"})),
        (json!("b"), json!("b"))
    );
    assert_eq!(
        pod(json!({"serviceAccountName": "a", "serviceAccount": "b"})),
        (json!("a"), json!("a"))
    );
    assert_eq!(pod(json!({"priority": 5})).0, json!("default"));
}

#[test]
fn volumes() {
    let pod = defaulted(
        Kind::Pod,
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [
                {"name": "config", "configMap": {"name": "hello-server-configmap"}},
                {"name": "secret", "secret": {"secretName": "s", "defaultMode": 256}},
                {"name": "scratch"},
                {"name": "host", "hostPath": {"path": "/tmp"}}
            ]
        }}),
    );
    let v = &pod["spec"]["volumes"];
    assert_eq!(
        v[0]["configMap"],
        json!({"name": "hello-server-configmap", "defaultMode": 420})
    );
    assert_eq!(v[1]["secret"]["defaultMode"], 256);
    assert_eq!(v[2], json!({"name": "scratch", "emptyDir": {}}));
    assert_eq!(v[3]["hostPath"], json!({"path": "/tmp", "type": ""}));
}

#[test]
fn services() {
    let svc = defaulted(
        Kind::Service,
        json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"},
            "ports": [{"port": 80}, {"name": "named", "port": 81, "targetPort": "http"}, {"port": 82, "targetPort": 8082, "protocol": "UDP"}]
        }}),
    );
    assert_eq!(
        svc["spec"],
        json!({
            "selector": {"app": "web"},
            "ports": [
                {"port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "named", "port": 81, "protocol": "TCP", "targetPort": "http"},
                {"port": 82, "protocol": "UDP", "targetPort": 8082}
            ],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"]
        })
    );
    let external = defaulted(
        Kind::Service,
        json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(external["spec"].get("ipFamilyPolicy").is_none());
    assert!(external["spec"].get("ipFamilies").is_none());
    let node_port = defaulted(
        Kind::Service,
        json!({"metadata": {"name": "np"}, "spec": {
            "type": "NodePort", "sessionAffinity": "ClientIP", "ports": [{"port": 80, "nodePort": 30080}]
        }}),
    );
    assert_eq!(node_port["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(
        node_port["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    assert_eq!(node_port["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn namespaces_secrets_endpoints() {
    let ns = defaulted(Kind::Namespace, json!({"metadata": {"name": "shop"}}));
    assert_eq!(
        ns["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "shop"})
    );
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    let secret = defaulted(
        Kind::Secret,
        json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "yz"}}),
    );
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"], json!({"a": "eA==", "b": "eXo="}));
    assert!(secret.get("stringData").is_none());
    let ep = defaulted(
        Kind::Endpoints,
        json!({"metadata": {"name": "web"}, "subsets": [{"ports": [{"port": 8080}]}]}),
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
}

#[test]
fn new_pods_are_pending_with_a_qos_class() {
    let pod = |resources: Value, status: Value| {
        defaulted(
            Kind::Pod,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "c", "image": "i:1", "resources": resources}
            ]}, "status": status}),
        )
    };
    let fresh = pod(json!({}), Value::Null);
    assert_eq!(
        fresh["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    // Limits alone: requests default to them, so the pod is Guaranteed.
    let limited = pod(
        json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
        Value::Null,
    );
    assert_eq!(limited["status"]["qosClass"], "Guaranteed");
    let shipped = pod(
        json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}),
        Value::Null,
    );
    assert_eq!(shipped["status"]["qosClass"], "Burstable");
    // A status the kubelet wrote is kept.
    let running = pod(
        json!({}),
        json!({"phase": "Running", "qosClass": "Burstable", "podIP": "127.0.1.1"}),
    );
    assert_eq!(
        running["status"],
        json!({"phase": "Running", "qosClass": "Burstable", "podIP": "127.0.1.1"})
    );
}
