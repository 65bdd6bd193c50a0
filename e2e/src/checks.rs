//! The end-of-scenario checks every cluster scenario ends with, against any
//! gateway's REST API: the stored history of a chat is gapless, every
//! acknowledged send is stored exactly once at its acked seq, and every
//! member's device holds every seq.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use uuid::Uuid;

use crate::api::{Api, User};
use crate::device::Device;

/// Every message of `chat` in the store, oldest first: (seq, client_msg_id).
pub async fn history(api: &Api, u: &User, chat: Uuid) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let url = format!("{}/v1/chats/{chat}/messages?limit=200{q}", api.url);
        let page: Value = api
            .http
            .get(url)
            .bearer_auth(&u.token)
            .send()
            .await?
            .json()
            .await?;
        for m in page["messages"].as_array().context("messages")? {
            out.push((
                m["seq"].as_u64().context("seq")?,
                m["client_msg_id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// Gapless seqs 1..=n in the store, every acked send of `senders` stored
/// exactly once at its acked seq, and every device of `receivers` holding
/// every seq.
pub async fn check(
    api: &Api,
    reader: &User,
    chat: Uuid,
    senders: &[&Device],
    receivers: &[&Device],
) -> Result<()> {
    let stored = history(api, reader, chat).await?;
    let seqs: Vec<u64> = stored.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    ensure!(seqs == expected, "seqs are not gapless: {seqs:?}");
    let mut ids = BTreeMap::new();
    for (seq, id) in &stored {
        if !id.is_empty() {
            ensure!(ids.insert(id.clone(), *seq).is_none(), "{id} stored twice");
        }
    }
    for d in senders {
        ensure!(d.refused.is_empty(), "sends refused: {:?}", d.refused);
        for (id, (ch, seq)) in &d.acked {
            if *ch == chat {
                ensure!(
                    ids.get(id) == Some(seq),
                    "acked {id} at {seq}, stored at {:?}",
                    ids.get(id)
                );
            }
        }
    }
    let all: BTreeSet<u64> = seqs.iter().copied().collect();
    for d in receivers {
        let got: BTreeSet<u64> = d.seqs(chat).into_iter().collect();
        let missing: Vec<_> = all.difference(&got).collect();
        ensure!(missing.is_empty(), "a device misses seqs {missing:?}");
    }
    Ok(())
}
