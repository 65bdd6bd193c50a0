//! The operations a client can ask for, one module per family, each used by
//! both edges — the WebSocket dispatch (`session::dispatch`) and the REST
//! routes (`gateway::rest`) — so the two cannot drift: an edge decodes its
//! frame or body, calls the operation here, and frames the typed answer.
//!
//! - [`send`]: sending messages (text, or media attached first), typing.
//! - [`receipts`]: delivered and read watermarks.
//! - [`membership`]: direct chats, groups, invites, joining and leaving.
//! - [`history`]: the chat list, one chat's view, pages of messages.
//! - [`devices`]: devices registered for push notifications.
//!
//! Sign-up and sign-in live with the node's policies (`node::accounts`);
//! presence queries with presence (`presence`); media uploads and downloads
//! with media (`media`).
//!
//! Every operation runs on [`crate::node::Node`], reaches the shards through
//! the typed calls of [`crate::shard::ShardClient`], and answers
//! `Result<_, ApiError>`.

pub mod devices;
pub mod history;
pub mod membership;
pub mod receipts;
pub mod send;
