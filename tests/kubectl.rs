//! Acceptance tests of `harness up`: the real kubectl (v1.32) drives the embedded cluster with
//! the command lines of the tutorials (`/work/shared/seeds/`), and each test asserts on what
//! kubectl prints (columns, STATUS words, name shapes, events) and on how the cluster behaves
//! (pods replaced, rollouts stepping, traffic through port-forwards and Services), scenario by
//! scenario (S1-S18 of `scenarios.md`; S17, killing a container process, is library-only).
//!
//! Each test starts its own `harness up --quiet --api-port 0` with a kubeconfig and a kubectl
//! discovery cache in its own temp dir, and ends by sending SIGTERM: the harness must exit 0
//! with none of its hostbot processes left. Where kubectl's output or the cluster's behaviour
//! differs from real Kubernetes, the test is written as real Kubernetes behaves.
//!
//! Without kubectl on PATH the tests are skipped loudly, except under `CI=true` where that is a
//! failure.
//!
//! # Layout
//!
//! - `kubectl/support.rs`: the harness child and kubectl runs; `background.rs` (watch,
//!   port-forward), `http.rs` (requests, load), `output.rs` (tables, names, describe) beside it.
//! - `kubectl/pods.rs`: a bare Pod (S1), probes (S18).
//! - `kubectl/deployments.rs`: Deployment -> ReplicaSet -> Pods (S2-S6), scale, delete.
//! - `kubectl/rollouts.rs`: rolling updates and Recreate (S7-S9).
//! - `kubectl/missing_image.rs`: a rollout to a missing image, fixed with `kubectl edit` (S10).
//! - `kubectl/rollout_verbs.rs`: `set image`, `rollout history|undo|pause|resume|restart`.
//! - `kubectl/services.rs`: ClusterIP, NodePort, endpoints, a selector typo (S11, S12).
//! - `kubectl/configmaps.rs`: ConfigMaps as env and volume, a missing key (S13-S16).
//! - `kubectl/create.rs`: `create namespace|configmap|secret|service`, sent as protobuf.
//! - `kubectl/fidelity.rs`: details of upstream's output that a tutorial reader sees.

#[path = "kubectl/background.rs"]
mod background;
#[path = "kubectl/http.rs"]
mod http;
#[path = "kubectl/output.rs"]
mod output;
#[path = "kubectl/support.rs"]
mod support;

#[path = "kubectl/configmaps.rs"]
mod configmaps;
#[path = "kubectl/create.rs"]
mod create;
#[path = "kubectl/deployments.rs"]
mod deployments;
#[path = "kubectl/fidelity.rs"]
mod fidelity;
#[path = "kubectl/missing_image.rs"]
mod missing_image;
#[path = "kubectl/pods.rs"]
mod pods;
#[path = "kubectl/rollout_verbs.rs"]
mod rollout_verbs;
#[path = "kubectl/rollouts.rs"]
mod rollouts;
#[path = "kubectl/services.rs"]
mod services;
