//! The harness: an embedded single-machine cluster that speaks Kubernetes.
//!
//! # Layout
//! - [`object`]: the supported kinds ([`object::Object`], [`object::Kind`]).
//! - [`store`]: the one owner of objects, with watches ([`store::Store`]).
//! - [`selector`]: label selectors.
//! - [`names`]: template hashes and generated names.
//! - [`defaults`], [`validate`]: what the API server does to every write.

pub mod defaults;
pub mod error;
pub mod names;
pub mod object;
pub mod selector;
pub mod store;
pub mod validate;

pub use error::{Error, Result};
