//! The harness: an embedded single-machine cluster that speaks Kubernetes.
//!
//! # Layout
//! - [`object`]: the supported kinds ([`object::Object`], [`object::Kind`]).
//! - [`store`]: the one owner of objects, with watches ([`store::Store`]).
//! - [`selector`]: label selectors.
//! - [`names`]: template hashes and generated names.
//! - [`defaults`], [`validate`]: what the API server does to every write.
//! - [`manifest`]: loading manifest files and applying them (`apply -f`, `delete -f`).
//! - [`ipam`]: loopback pod and cluster IPs, NodePorts.
//! - [`kubelet`]: the node agent: runs pods' containers, probes, volumes, status ([`kubelet::spawn`]).
//! - [`runtime`]: container runtimes (real processes or in-process hostbots) and the image catalog.
//! - [`proxy`]: the Service proxy (kube-proxy, IPVS style) ([`proxy::ServiceProxy`]).
//! - [`portforward`]: `port-forward` to pods, Deployments, ReplicaSets and Services.
//! - [`kube_forward`]: port-forwarding through any cluster's API (SPDY sessions per pod, a
//!   Service's endpoints per connection), for `check --kubeconfig` and `harness port-forward`.
//! - [`controller`]: Deployment, ReplicaSet, Endpoints, EndpointSlice and Reloader reconcilers
//!   ([`controller::spawn`]).
//! - [`podutil`]: pod readiness, availability and controller references.
//! - [`api`]: the Kubernetes API over HTTPS that the real kubectl drives ([`api::serve`]);
//!   [`kubeconfig`] writes the file that points kubectl at it.

pub mod api;
pub mod check;
pub mod cluster;
pub mod controller;
pub mod defaults;
pub mod error;
pub mod ipam;
pub mod kube_forward;
pub mod kubeconfig;
pub mod kubelet;
pub mod manifest;
pub mod names;
pub mod node;
pub mod object;
pub mod podutil;
pub mod portforward;
pub mod proxy;
pub mod runtime;
pub mod selector;
pub mod store;
pub mod validate;

pub use error::{Error, Result};
