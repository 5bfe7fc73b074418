//! kubectl's typed `create` generators (`create namespace|configmap|secret|service`), which send
//! their object as Kubernetes protobuf rather than JSON: each must answer kubectl's usual
//! `<kind>/<name> created` line and store the object the generator describes. (`create
//! deployment` is in `fidelity.rs`, with the kiamol tutorial it comes from.)

use serde_json::json;

use crate::support::Up;

#[test]
fn kubectl_create_namespace_configmap_secret_and_services_make_their_objects() {
    let Some(up) = Up::start() else { return };
    assert_eq!(
        up.ok(&["create", "namespace", "shop"]),
        "namespace/shop created\n"
    );
    let namespace = up.json(&["namespace", "shop"]);
    assert_eq!(namespace["status"]["phase"], "Active", "{namespace}");

    let text = up.write("greeting.txt", "hello\nworld\n");
    let binary = text.with_file_name("logo.bin");
    std::fs::write(&binary, [0, 1, 2, 0xff, 0xfe]).unwrap();
    let from_text = format!("--from-file={}", text.display());
    let from_binary = format!("--from-file=logo={}", binary.display());
    assert_eq!(
        up.ok(&[
            "create",
            "configmap",
            "app-config",
            "-n",
            "shop",
            "--from-literal=mode=blue",
            &from_text,
            &from_binary,
        ]),
        "configmap/app-config created\n"
    );
    let configmap = up.json(&["configmap", "app-config", "-n", "shop"]);
    assert_eq!(
        configmap["data"],
        json!({"mode": "blue", "greeting.txt": "hello\nworld\n"}),
        "{configmap}"
    );
    assert_eq!(
        configmap["binaryData"],
        json!({"logo": "AAEC//4="}),
        "{configmap}"
    );

    assert_eq!(
        up.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "shop",
            "--from-literal=user=admin",
            "--from-literal=password=s3cr3t",
        ]),
        "secret/creds created\n"
    );
    let secret = up.json(&["secret", "creds", "-n", "shop"]);
    assert_eq!(secret["type"], "Opaque", "{secret}");
    assert_eq!(
        secret["data"],
        json!({"user": "YWRtaW4=", "password": "czNjcjN0"}),
        "{secret}"
    );

    assert_eq!(
        up.ok(&[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "shop",
            "--tcp=80:8080",
        ]),
        "service/web created\n"
    );
    let service = up.json(&["service", "web", "-n", "shop"]);
    let spec = &service["spec"];
    assert_eq!(spec["type"], "ClusterIP", "{service}");
    assert_eq!(spec["selector"], json!({"app": "web"}), "{service}");
    assert_eq!(
        spec["ports"],
        json!([{"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP"}]),
        "{service}"
    );
    let cluster_ip = spec["clusterIP"].as_str().unwrap_or_default();
    assert!(
        cluster_ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "{service}"
    );

    assert_eq!(
        up.ok(&[
            "create",
            "service",
            "clusterip",
            "web-headless",
            "-n",
            "shop",
            "--clusterip=None",
        ]),
        "service/web-headless created\n"
    );
    let headless = up.json(&["service", "web-headless", "-n", "shop"]);
    assert_eq!(headless["spec"]["clusterIP"], "None", "{headless}");

    assert_eq!(
        up.ok(&[
            "create",
            "service",
            "nodeport",
            "web-np",
            "-n",
            "shop",
            "--tcp=80:8080",
        ]),
        "service/web-np created\n"
    );
    let node_port = up.json(&["service", "web-np", "-n", "shop"]);
    assert_eq!(node_port["spec"]["type"], "NodePort", "{node_port}");
    let port = node_port["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .unwrap_or(0);
    assert!((30000..=32767).contains(&port), "{node_port}");

    let services = up.table(&["services", "-n", "shop"]);
    assert_eq!(
        services.names(),
        ["web", "web-headless", "web-np"],
        "{}",
        services.text
    );
    up.stop();
}

/// `-o yaml --dry-run=server` sends the same protobuf body with `dryRun=All`: kubectl prints the
/// object the server would store (defaults filled in), and nothing is stored.
#[test]
fn kubectl_create_with_server_dry_run_prints_the_object_and_stores_nothing() {
    let Some(up) = Up::start() else { return };
    let out = up.ok(&[
        "create",
        "deployment",
        "preview",
        "--image=kiamol/ch02-hello-kiamol",
        "--replicas=2",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    let preview: serde_json::Value = serde_json::from_str(&out).expect("kubectl printed JSON");
    assert_eq!(preview["kind"], "Deployment", "{out}");
    assert_eq!(preview["spec"]["replicas"], 2, "{out}");
    assert_eq!(
        preview["spec"]["strategy"]["type"], "RollingUpdate",
        "{out}"
    );
    let container = &preview["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["imagePullPolicy"], "Always", "{out}");
    assert_eq!(container["terminationMessagePolicy"], "File", "{out}");
    let missing = up.fails(&["get", "deployment", "preview"]);
    assert!(missing.contains("\"preview\" not found"), "{missing}");
    up.stop();
}
