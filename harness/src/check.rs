//! `harness check`: load through a forwarded port while the cluster is disrupted, and a verdict.
//!
//! [`load`] sends the requests, [`stats`] measures them.

pub mod embedded_ops;
pub mod kube_apply;
pub mod kube_ops;
pub mod load;
pub mod ops;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
