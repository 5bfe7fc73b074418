use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::object::Kind;

const DEPLOYMENT: &str = r#"---
# hostbot, the workload
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hostbot
  labels:
    app: hostbot
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hostbot
  strategy:
    rollingUpdate:
      maxSurge: 1
  template:
    metadata:
      labels:
        app: hostbot
    spec:
      containers:
      - name: hostbot
        image: hostbot:1.0
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: PORT
          valueFrom:
            configMapKeyRef:
              name: hostbot-config
              key: PORT
        readinessProbe:
          httpGet:
            path: /readyz
            port: http
        volumeMounts:
        - name: config
          mountPath: /etc/hostbot
      volumes:
      - name: config
        configMap:
          name: hostbot-config
          defaultMode: 0644
"#;

const SERVICE_AND_CONFIG: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: hostbot
spec:
  type: NodePort
  selector:
    app: hostbot
  ports:
  - name: http
    port: 80
    targetPort: http
---
---
# an empty document above, comments only here
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: hostbot-config
data:
  PORT: "8080"
  message.txt: |
    hello
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deploy.yml", DEPLOYMENT);
    write(dir.path(), "service.yaml", SERVICE_AND_CONFIG);
    write(dir.path(), "README.md", "not a manifest");
    write(
        dir.path(),
        "nested/extra.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n",
    );
    dir
}

fn error_text(result: Result<Vec<Manifest>>) -> String {
    match result {
        Err(Error::Manifest(text)) => text,
        other => panic!("expected a manifest error, got {other:?}"),
    }
}

fn parse_err(text: &str) -> String {
    error_text(parse_str(text, Path::new("manifests/deploy.yml")))
}

#[test]
fn loads_a_directory_in_name_order() {
    let dir = fixture_dir();
    let manifests = load_path(dir.path()).unwrap();
    let found: Vec<(String, usize, Kind, &str)> = manifests
        .iter()
        .map(|m| {
            let file = m.file.file_name().unwrap().to_string_lossy().into_owned();
            (file, m.document, m.object.kind(), m.object.name())
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("deploy.yml".into(), 1, Kind::Deployment, "hostbot"),
            ("service.yaml".into(), 1, Kind::Service, "hostbot"),
            ("service.yaml".into(), 2, Kind::ConfigMap, "hostbot-config"),
        ]
    );
    assert_eq!(manifests[0].file, dir.path().join("deploy.yml"));
    let recursive = load_path_recursive(dir.path()).unwrap();
    assert_eq!(recursive.len(), 4);
    assert_eq!(
        recursive[1].object.kind(),
        Kind::Namespace,
        "nested/ sorts between the files"
    );
    let single = load_path(&dir.path().join("deploy.yml")).unwrap();
    assert_eq!(single.len(), 1);
    let empty = tempfile::tempdir().unwrap();
    assert!(error_text(load_path(empty.path())).contains("no manifests found"));
    assert!(
        error_text(load_path(&dir.path().join("missing.yaml")))
            .contains("missing.yaml: cannot read")
    );
}

#[test]
fn octal_modes_read_as_kubectl_reads_them() {
    let manifests = parse_str(DEPLOYMENT, Path::new("deploy.yml")).unwrap();
    let deployment = Deployment::try_from(manifests[0].object.clone()).unwrap();
    let volumes = deployment
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .volumes
        .unwrap();
    assert_eq!(
        volumes[0].config_map.as_ref().unwrap().default_mode,
        Some(420)
    );
    // The text is kept as written: no defaults, no namespace.
    assert_eq!(manifests[0].object.namespace(), "");
    assert_eq!(manifests[0].key().namespace, "default");
}

#[test]
fn yaml_strings_numbers_and_blocks() {
    let manifests = parse_str(SERVICE_AND_CONFIG, Path::new("s.yaml")).unwrap();
    let service = Service::try_from(manifests[0].object.clone()).unwrap();
    let port = &service.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    let cm = ConfigMap::try_from(manifests[1].object.clone()).unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["PORT"], "8080");
    assert_eq!(data["message.txt"], "hello\n");
}

#[test]
fn json_objects_and_lists() {
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "shop"},
         "spec": {"selector": {"app": "b"}, "ports": [{"port": 80}]}}
    ]}"#;
    let manifests = parse_str(list, Path::new("list.json")).unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(
        manifests[1].key(),
        ObjectKey::new(Kind::Service, "shop", "b")
    );
    assert!(manifests.iter().all(|m| m.document == 1));
    let single = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}"#;
    assert_eq!(
        parse_str(single, Path::new("ns.json")).unwrap()[0]
            .object
            .kind(),
        Kind::Namespace
    );
    let bad_item = r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "dta": {}}]}"#;
    let err = error_text(parse_str(bad_item, Path::new("list.json")));
    assert!(err.starts_with("list.json: document 1, item 1 (ConfigMap \"a\"): unknown field \"dta\": did you mean \"data\"?"), "{err}");
    let broken = error_text(parse_str(
        "{\"apiVersion\": \"v1\",\n \"kind\": }",
        Path::new("x.json"),
    ));
    assert!(
        broken.starts_with("x.json: document 1: invalid JSON at line 2"),
        "{broken}"
    );
    // A YAML list document holding objects is read like a List.
    let yaml_list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: a\n";
    assert_eq!(parse_str(yaml_list, Path::new("l.yaml")).unwrap().len(), 1);
}

#[test]
fn unknown_fields_name_file_document_object_and_field() {
    let text = format!(
        "{SERVICE_AND_CONFIG}---\n{}",
        DEPLOYMENT.replace("  replicas: 3", "  replica: 3")
    );
    let err = parse_err(&text);
    assert_eq!(
        err,
        "manifests/deploy.yml: document 3 (Deployment \"hostbot\"): unknown field \"spec.replica\": did you mean \"replicas\"? check the spelling against \"kubectl explain deployment.spec\""
    );
    let nested = parse_err(&DEPLOYMENT.replace(
        "        image: hostbot:1.0",
        "        image: hostbot:1.0\n        imagePullPolcy: Always",
    ));
    assert_eq!(
        nested,
        "manifests/deploy.yml: document 1 (Deployment \"hostbot\"): unknown field \"spec.template.spec.containers[0].imagePullPolcy\": did you mean \"imagePullPolicy\"? check the spelling against \"kubectl explain deployment.spec.template.spec.containers\""
    );
    let top = parse_err("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\nspec:\n  x: 1\n");
    assert!(
        top.contains(
            "unknown field \"spec\": check the spelling against \"kubectl explain configmap\""
        ),
        "{top}"
    );
}

#[test]
fn type_errors_name_the_field_and_the_fix() {
    let replicas = parse_err(&DEPLOYMENT.replace("replicas: 3", "replicas: three"));
    assert_eq!(
        replicas,
        "manifests/deploy.yml: document 1 (Deployment \"hostbot\"): field \"spec.replicas\": expected an integer, got string \"three\""
    );
    let quoted = parse_err(&DEPLOYMENT.replace("replicas: 3", "replicas: \"3\""));
    assert!(
        quoted.ends_with("expected an integer, got string \"3\": write the number without quotes"),
        "{quoted}"
    );
    let env = parse_err(&DEPLOYMENT.replace(
        "        - name: PORT\n          valueFrom:\n            configMapKeyRef:\n              name: hostbot-config\n              key: PORT\n",
        "        - name: PORT\n          value: 8080\n",
    ));
    assert!(
        env.ends_with("field \"spec.template.spec.containers[0].env[0].value\": expected a string, got integer `8080`: quote it (\"8080\") to make it a string"),
        "{env}"
    );
    let label = parse_err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    enabled: true\n",
    );
    assert!(
        label.contains("field \"metadata.labels[enabled]\": expected a string, got boolean `true`"),
        "{label}"
    );
}

#[test]
fn kinds_api_versions_names_and_syntax() {
    let ingress =
        parse_err("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n");
    assert!(ingress.starts_with("manifests/deploy.yml: document 1 (Ingress \"web\"): unsupported kind \"Ingress\" (apiVersion \"networking.k8s.io/v1\"): the harness supports Namespace (v1), Pod (v1), ReplicaSet (apps/v1), Deployment (apps/v1)"), "{ingress}");
    let old =
        parse_err(&DEPLOYMENT.replace("apiVersion: apps/v1", "apiVersion: extensions/v1beta1"));
    assert!(
        old.contains("Deployment is served as apiVersion \"apps/v1\", not \"extensions/v1beta1\""),
        "{old}"
    );
    let case = parse_err("apiVersion: v1\nkind: configmap\nmetadata:\n  name: c\n");
    assert!(case.contains("did you mean \"ConfigMap\"?"), "{case}");
    let no_kind = parse_err("apiVersion: v1\nmetadata:\n  name: c\n");
    assert_eq!(
        no_kind,
        "manifests/deploy.yml: document 1 (\"c\"): kind not set: every object needs both, e.g. \"apiVersion: apps/v1\" and \"kind: Deployment\""
    );
    let no_name = parse_err("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: c-\n");
    assert!(
        no_name.contains("(ConfigMap): metadata.name is required"),
        "{no_name}"
    );
    let list = parse_err("- a\n- b\n");
    assert!(list.contains("found a list"), "{list}");
    let duplicate =
        parse_err("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: 1\n  a: 2\n");
    assert!(duplicate.ends_with("invalid YAML at line 7, column 3: duplicate key \"a\": a key may appear only once in a mapping"), "{duplicate}");
    let base64 = parse_err(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  password: hunter2!\n",
    );
    assert!(
        base64.contains("(Secret \"s\"): field \"data[password]\": ")
            && base64.ends_with("put plain text under stringData instead)"),
        "{base64}"
    );
    let syntax = parse_err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n data: {\n",
    );
    assert!(
        syntax.starts_with("manifests/deploy.yml: document 2: invalid YAML at line 10"),
        "{syntax}"
    );
}

#[test]
fn validation_errors_read_like_kubectl() {
    let typo = parse_err(&DEPLOYMENT.replace(
        "    metadata:\n      labels:\n        app: hostbot",
        "    metadata:\n      labels:\n        app: hostbot-typo",
    ));
    assert_eq!(
        typo,
        "manifests/deploy.yml: document 1 (Deployment \"hostbot\"): spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"hostbot-typo\"}: `selector` does not match template `labels`: make spec.selector.matchLabels a subset of spec.template.metadata.labels"
    );
    let zero =
        parse_err(&DEPLOYMENT.replace("maxSurge: 1", "maxSurge: 0\n      maxUnavailable: 0"));
    assert!(zero.contains("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"), "{zero}");
    // Every problem of every document is reported at once.
    let both = parse_err(&format!(
        "{}\n---\n{}",
        DEPLOYMENT.replace("replicas: 3", "replicas: -1"),
        SERVICE_AND_CONFIG.replace("port: 80", "port: 0")
    ));
    let lines: Vec<&str> = both.lines().collect();
    assert_eq!(lines.len(), 2, "{both}");
    assert!(lines[0].contains("document 1 (Deployment \"hostbot\"): spec.replicas: Invalid value: -1: must be greater than or equal to 0"));
    assert!(lines[1].contains("document 2 (Service \"hostbot\"): spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"));
}

fn apply_text(store: &Store, text: &str) -> Result<Vec<(ObjectKey, Outcome)>> {
    apply(store, parse_str(text, Path::new("manifests/app.yaml"))?)
}

fn outcomes(result: Vec<(ObjectKey, Outcome)>) -> Vec<Outcome> {
    result.into_iter().map(|(_, o)| o).collect()
}

#[test]
fn apply_creates_then_leaves_then_configures() {
    let store = Store::new();
    let dir = fixture_dir();
    let first = apply(&store, load_path(dir.path()).unwrap()).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|(k, o)| kubectl_line(k, *o))
            .collect::<Vec<_>>(),
        [
            "deployment.apps/hostbot created",
            "service/hostbot created",
            "configmap/hostbot-config created"
        ]
    );
    let stored: Deployment = store.get_as("default", "hostbot").unwrap();
    assert_eq!(stored.metadata.generation, Some(1));
    let last = &stored.metadata.annotations.as_ref().unwrap()[LAST_APPLIED];
    assert!(last.starts_with("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"hostbot\"},\"name\":\"hostbot\",\"namespace\":\"default\"}"), "{last}");
    assert!(last.ends_with("}\n"));
    let spec = stored.spec.unwrap();
    assert_eq!(spec.revision_history_limit, Some(10), "defaults applied");

    let again = apply(&store, load_path(dir.path()).unwrap()).unwrap();
    assert_eq!(outcomes(again), [Outcome::Unchanged; 3]);

    let changed = DEPLOYMENT.replace("image: hostbot:1.0", "image: hostbot:1.1");
    assert_eq!(
        outcomes(apply_text(&store, &changed).unwrap()),
        [Outcome::Configured]
    );
    let stored: Deployment = store.get_as("default", "hostbot").unwrap();
    assert_eq!(stored.metadata.generation, Some(2));
    let image = &stored.spec.unwrap().template.spec.unwrap().containers[0].image;
    assert_eq!(image.as_deref(), Some("hostbot:1.1"));
    assert_eq!(
        outcomes(apply_text(&store, &changed).unwrap()),
        [Outcome::Unchanged]
    );
}

#[test]
fn reapply_keeps_what_others_wrote_and_drops_what_the_manifest_dropped() {
    let store = Store::new();
    let without_replicas = DEPLOYMENT.replace("  replicas: 3\n", "").replace(
        "  labels:\n    app: hostbot\nspec:",
        "  labels:\n    app: hostbot\n    tier: web\nspec:",
    );
    apply_text(&store, &without_replicas).unwrap();
    store
        .modify::<Deployment, _>("default", "hostbot", |d| {
            d.metadata
                .annotations
                .get_or_insert_default()
                .insert("deployment.kubernetes.io/revision".into(), "1".into());
            d.spec.as_mut().unwrap().replicas = Some(5);
            let template = &mut d.spec.as_mut().unwrap().template;
            template
                .metadata
                .get_or_insert_default()
                .annotations
                .get_or_insert_default()
                .insert(
                    "kubectl.kubernetes.io/restartedAt".into(),
                    "2024-07-14T04:19:36Z".into(),
                );
        })
        .unwrap();
    assert_eq!(
        outcomes(apply_text(&store, &without_replicas).unwrap()),
        [Outcome::Unchanged]
    );
    let stored: Deployment = store.get_as("default", "hostbot").unwrap();
    assert_eq!(
        stored.spec.as_ref().unwrap().replicas,
        Some(5),
        "kubectl scale survives"
    );
    assert!(
        stored
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("deployment.kubernetes.io/revision")
    );

    let untagged = DEPLOYMENT.replace("  replicas: 3\n", "");
    assert_eq!(
        outcomes(apply_text(&store, &untagged).unwrap()),
        [Outcome::Configured]
    );
    let stored: Deployment = store.get_as("default", "hostbot").unwrap();
    assert!(
        !stored
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("tier"),
        "dropped label removed"
    );
    let template_annotations = stored
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(
        template_annotations.contains_key("kubectl.kubernetes.io/restartedAt"),
        "restart stamp kept"
    );

    let recreate = untagged.replace(
        "  strategy:\n    rollingUpdate:\n      maxSurge: 1\n",
        "  strategy:\n    type: Recreate\n",
    );
    assert_eq!(
        outcomes(apply_text(&store, &recreate).unwrap()),
        [Outcome::Configured]
    );
    let strategy = store
        .get_as::<Deployment>("default", "hostbot")
        .unwrap()
        .spec
        .unwrap()
        .strategy
        .unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert_eq!(strategy.rolling_update, None);
}

#[test]
fn services_keep_their_allocations() {
    let store = Store::new();
    apply_text(&store, SERVICE_AND_CONFIG).unwrap();
    store
        .modify::<Service, _>("default", "hostbot", |s| {
            let spec = s.spec.as_mut().unwrap();
            spec.cluster_ip = Some("10.96.0.10".into());
            spec.cluster_ips = Some(vec!["10.96.0.10".into()]);
            spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
        })
        .unwrap();
    assert_eq!(
        outcomes(apply_text(&store, SERVICE_AND_CONFIG).unwrap()),
        [Outcome::Unchanged; 2]
    );
    let moved = SERVICE_AND_CONFIG.replace("targetPort: http", "targetPort: 8080");
    assert_eq!(
        outcomes(apply_text(&store, &moved).unwrap()),
        [Outcome::Configured, Outcome::Unchanged]
    );
    let spec = store
        .get_as::<Service>("default", "hostbot")
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30080));
    let clustered = moved.replace("  type: NodePort\n", "");
    assert_eq!(
        outcomes(apply_text(&store, &clustered).unwrap()),
        [Outcome::Configured, Outcome::Unchanged]
    );
    let spec = store
        .get_as::<Service>("default", "hostbot")
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.unwrap()[0].node_port, None);
    assert_eq!(spec.external_traffic_policy, None);
    let pinned = clustered.replace(
        "spec:\n  selector:",
        "spec:\n  clusterIP: 10.96.0.99\n  selector:",
    );
    let err = apply_text(&store, &pinned).unwrap_err().to_string();
    assert!(err.contains("manifests/app.yaml: document 1 (Service \"hostbot\"): spec.clusterIPs[0]: Invalid value: \"10.96.0.99\": may not change once set"), "{err}");
}

#[test]
fn a_bad_document_writes_nothing() {
    let store = Store::new();
    let in_missing_namespace =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: shop\n";
    let err = apply_text(
        &store,
        &format!("{SERVICE_AND_CONFIG}---\n{in_missing_namespace}"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("document 3 (ConfigMap \"c\"): namespace \"shop\" not found"),
        "{err}"
    );
    assert!(store.list(Kind::Service, None).is_empty());
    assert!(store.list(Kind::ConfigMap, None).is_empty());

    let with_namespace = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n{in_missing_namespace}"
    );
    assert_eq!(
        outcomes(apply_text(&store, &with_namespace).unwrap()),
        [Outcome::Created; 2]
    );
    assert_eq!(
        outcomes(apply_text(&store, &with_namespace).unwrap()),
        [Outcome::Unchanged; 2]
    );

    apply_text(&store, DEPLOYMENT).unwrap();
    let moved = DEPLOYMENT.replace("app: hostbot", "app: hostbot2");
    let err = apply_text(&store, &format!("{in_missing_namespace}---\n{moved}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("document 2 (Deployment \"hostbot\"): spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"hostbot2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable: delete the object and apply again"), "{err}");
    let cm: ConfigMap = store.get_as("shop", "c").unwrap();
    assert_eq!(
        cm.metadata.resource_version,
        store
            .get_as::<ConfigMap>("shop", "c")
            .unwrap()
            .metadata
            .resource_version
    );

    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: i:1\n    ports:\n    - containerPort: 80\n";
    apply_text(&store, pod).unwrap();
    assert_eq!(
        outcomes(apply_text(&store, &pod.replace("i:1", "i:2")).unwrap()),
        [Outcome::Configured]
    );
    let err = apply_text(&store, &pod.replace("80", "81"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("(Pod \"p\"): spec: Forbidden: pod updates may not change fields other than"),
        "{err}"
    );
}

#[test]
fn delete_removes_what_the_manifests_name() {
    let store = Store::new();
    let dir = fixture_dir();
    apply(&store, load_path(dir.path()).unwrap()).unwrap();
    let deleted = delete(&store, load_path(dir.path()).unwrap()).unwrap();
    assert_eq!(
        deleted,
        vec![
            ObjectKey::new(Kind::Deployment, "default", "hostbot"),
            ObjectKey::new(Kind::Service, "default", "hostbot"),
            ObjectKey::new(Kind::ConfigMap, "default", "hostbot-config"),
        ]
    );
    assert!(store.get(&deleted[0]).is_none());
    assert!(
        delete(&store, load_path(dir.path()).unwrap())
            .unwrap()
            .is_empty()
    );
}
