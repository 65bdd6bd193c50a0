//! confab-client: a Rust client for Confab's chat server.
//!
//! - [`Rest`]: accounts, chats, history, sends and media uploads over the
//!   REST API.
//! - [`Client`]: the WebSocket session an app keeps open. It resumes from
//!   stored watermarks ([`Watermarks`]: [`InMemory`], [`JsonFile`]),
//!   reconnects with jittered backoff unless a close code says stop, keeps
//!   sends queued with their `client_msg_id` until stored, shows each
//!   message once, and answers requests; the app reads [`Events`].
//! - [`Connection`]: one typed WebSocket, for tools that drive the protocol
//!   frame by frame (load generators, scenario tests).
//!
//! The wire types are [`protocol`] (`confab-protocol`), the server's own.
//! TLS uses ring: [`Rest::new`] and [`system_tls`] install it as the
//! process's provider unless the app installed one first.

mod connection;
pub mod cursor;
mod error;
pub mod outbox;
mod rest;
mod session;
mod storage;

pub use confab_protocol as protocol;
pub use connection::{Connection, Io, Reader, Socket, Welcome, Writer, system_tls, ws_url};
pub use error::{CloseAction, Error, close_action};
pub use rest::Rest;
pub use session::{Client, Event, Events, Options, Sent};
pub use storage::{InMemory, JsonFile, Watermarks};

/// Installs ring as the process's TLS crypto provider, unless one is
/// installed already.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
