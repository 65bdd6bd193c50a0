//! Integration tests: a real standalone server on port 0, real WebSocket and
//! HTTP clients, real data directories.

mod abuse;
mod bad_input;
mod cli;
mod crash;
mod direct;
mod docs;
mod group_access;
mod groups;
mod harness;
mod media;
mod presence;
mod resume;
mod tls;
