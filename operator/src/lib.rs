//! confab-operator: reconciles `ChatCluster` resources into chat-runtime pods.
//!
//! # Layout
//! - [`core`]: pure decisions — one builder per object kind, the scaling
//!   plan (a state machine over `status.ring`), status and its patch. No
//!   client, no clock, no randomness.
//! - [`shell`]: the thin I/O around it — observe, server-side apply, the
//!   plan driver and the runtime control client, events, metrics and health
//!   endpoints, leader election, the kube-runtime `Controller`.
//! - [`args`]: command-line flags with environment fallbacks.
//! - [`error`]: the shell's error enum.

#![forbid(unsafe_code)]

pub mod args;
pub mod core;
pub mod error;
pub mod shell;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
