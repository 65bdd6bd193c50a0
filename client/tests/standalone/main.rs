//! confab-client against a real `chat-runtime standalone` process: the
//! REST calls, the session's sends, receipts, requests and resume, refusals
//! as typed errors, and kill -9 with sends in flight.

mod crash;
mod docs;
mod harness;
mod rest;
mod session;
