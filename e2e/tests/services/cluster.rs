//! Cluster-mode scenarios on a local cluster (real NATS and Cassandra, shard
//! and gateway processes). Each ends by checking that every acknowledged
//! message is stored exactly once with gapless seqs and reached every
//! member's device.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use confab_e2e::cluster::LocalCluster;
use confab_e2e::device::Device;
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

struct User {
    id: Uuid,
    phone: String,
    token: String,
}

async fn post(
    c: &LocalCluster,
    gw: usize,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut req = c
        .http
        .post(format!("{}{path}", c.gateway_url(gw)))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{path}: {status} {v}");
    Ok(v)
}

async fn user(c: &LocalCluster, gw: usize, name: &str) -> Result<User> {
    let phone = format!("+1{:010}", Uuid::new_v4().as_u128() % 10_000_000_000);
    let creds = json!({"phone": phone, "display_name": name, "password": "s3cret-pass"});
    post(c, gw, "/v1/register", None, creds).await?;
    let login = json!({"phone": phone, "password": "s3cret-pass"});
    let b = post(c, gw, "/v1/login", None, login).await?;
    Ok(User {
        id: b["user_id"].as_str().context("user_id")?.parse()?,
        phone,
        token: b["token"].as_str().context("token")?.to_owned(),
    })
}

/// Every message of `chat` in the store, oldest first: (seq, client_msg_id).
async fn history(c: &LocalCluster, gw: usize, u: &User, chat: Uuid) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let url = format!(
            "{}/v1/chats/{chat}/messages?limit=200{q}",
            c.gateway_url(gw)
        );
        let page: Value = c
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

/// The end-of-scenario check: gapless seqs 1..=n, every acked send stored
/// exactly once at its acked seq, and every device holding every seq.
async fn check(
    c: &LocalCluster,
    reader: &User,
    chat: Uuid,
    senders: &[&Device],
    receivers: &[&Device],
) -> Result<()> {
    let stored = history(c, c.any_gateway(), reader, chat).await?;
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

#[tokio::test]
async fn direct_and_group_chats_across_gateways() -> Result<()> {
    let c = LocalCluster::start(3, 2).await?;
    let alice = user(&c, 0, "alice").await?;
    let bob = user(&c, 1, "bob").await?;
    let carol = user(&c, 1, "carol").await?;
    let direct: Uuid = post(
        &c,
        0,
        "/v1/direct",
        Some(&alice.token),
        json!({"phone": bob.phone}),
    )
    .await?["chat_id"]
        .as_str()
        .context("chat_id")?
        .parse()?;
    let group: Uuid = post(
        &c,
        1,
        "/v1/groups",
        Some(&bob.token),
        json!({"title": "across", "members": [alice.id, carol.id]}),
    )
    .await?["chat_id"]
        .as_str()
        .context("chat_id")?
        .parse()?;

    let (mut a, mut b, mut k) = (
        Device::new(&alice.token),
        Device::new(&bob.token),
        Device::new(&carol.token),
    );
    a.connect(&c.gateway_url(0)).await?;
    b.connect(&c.gateway_url(1)).await?;
    k.connect(&c.gateway_url(1)).await?;
    for i in 0..40 {
        a.send(direct, &format!("a-{i}"), "hi bob").await?;
        b.send(group, &format!("b-{i}"), "hi all").await?;
    }
    a.until(WAIT, |d| d.pending.is_empty() && d.seqs(group).len() >= 41)
        .await?;
    b.until(WAIT, |d| d.pending.is_empty() && d.seqs(direct).len() >= 40)
        .await?;
    k.until(WAIT, |d| d.seqs(group).len() >= 41).await?;
    check(&c, &alice, direct, &[&a], &[&b]).await?;
    check(&c, &bob, group, &[&b], &[&a, &k]).await?;
    Ok(())
}

#[tokio::test]
async fn a_gateway_killed_under_load_loses_nothing() -> Result<()> {
    let mut c = LocalCluster::start(3, 2).await?;
    let alice = user(&c, 0, "alice").await?;
    let bob = user(&c, 1, "bob").await?;
    let chat: Uuid = post(
        &c,
        0,
        "/v1/direct",
        Some(&alice.token),
        json!({"phone": bob.phone}),
    )
    .await?["chat_id"]
        .as_str()
        .context("chat_id")?
        .parse()?;
    let (mut a, mut b) = (Device::new(&alice.token), Device::new(&bob.token));
    a.connect(&c.gateway_url(0)).await?;
    b.connect(&c.gateway_url(1)).await?;
    let total = 300;
    for i in 0..total {
        if i == total / 2 {
            // kill -9 Alice's gateway with sends in flight; she reconnects to
            // the other one, resumes, and re-sends what was not acked.
            c.kill_gateway(0);
            a.disconnect();
            a.connect(&c.gateway_url(1)).await?;
        }
        a.send(chat, &format!("m-{i}"), "under load").await?;
        // Read what is already there, without waiting.
        while a.next_frame(Duration::from_millis(1)).await?.is_some() {}
    }
    a.until(WAIT, |d| d.pending.is_empty()).await?;
    b.until(WAIT, |d| d.seqs(chat).len() >= total).await?;
    ensure!(a.acked.len() == total, "acked {} of {total}", a.acked.len());
    check(&c, &alice, chat, &[&a], &[&b]).await?;
    Ok(())
}
