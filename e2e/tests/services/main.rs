//! Smoke tests: each real service works from our code.
//!
//! Run by `e2e/scripts/test-all.sh`, which starts the services and exports
//! their addresses. A missing service fails its tests loudly.

mod cluster;
mod cql;
mod cql_tls;
mod helm;
mod kube;
mod media;
mod nats;
mod nats_tls;
mod operator;
mod runtime_seams;
