//! The contract shared by `confab-operator` and `chat-runtime`.
//!
//! # Layout
//! - [`cluster`]: the `ChatCluster` custom resource (confab.dev/v1alpha1).
//! - [`config`]: the cluster config file the operator writes for runtime pods.
//! - [`ring`]: consistent-hash placement of chats onto sequencing shards.
//! - [`control`]: the gRPC control API every runtime pod serves to the operator.
//!
//! This crate depends on neither the operator nor the runtime.

pub mod cluster;
pub mod config;
pub mod ring;

/// Generated tonic stubs for `proto/control.proto`.
pub mod control {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("confab.control.v1");
}
