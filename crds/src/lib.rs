//! The contract shared by `confab-operator` and `chat-runtime`.
//!
//! # Layout
//! - [`cluster`]: the `ChatCluster` custom resource (confab.dev/v1alpha1).
//! - [`control`]: the gRPC control API every runtime pod serves to the operator.
//!
//! This crate depends on neither the operator nor the runtime.

pub mod cluster;

/// Generated tonic stubs for `proto/control.proto`.
pub mod control {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("confab.control.v1");
}
