//! The scenarios of `scenarios.md` (S3-S18) end to end through the [`harness::cluster::Cluster`]
//! library API, with real hostbot processes (in-process pods only where a scenario needs many).
//! Each test reads like its scenario: apply manifests, disrupt, wait on conditions with
//! deadlines, assert what `kubectl get` would show and what a client of the Service saw. Every
//! test ends with [`support::shutdown`], which also checks that no container process is left.
//!
//! The hostbot binary must exist beside the test executable's directory
//! (`cargo build -p hostbot`).
//!
//! # Layout
//! - `support`: cluster start and shutdown, paths, waits, HTTP, the request loop.
//! - `workloads`: S3, S4, S6, S9 (Deployments, ReplicaSets and their pods).
//! - `availability`: S5, S7 (a pod deletion and a rolling update under traffic).
//! - `services`: S11, S12 (round-robin, NodePort, a selector typo).
//! - `config`: S13, S14 (ConfigMaps as env and as a volume).
//! - `restarts`: S17, S18 (a killed container, readiness and liveness probes).

mod availability;
mod config;
mod restarts;
mod services;
mod support;
mod workloads;
