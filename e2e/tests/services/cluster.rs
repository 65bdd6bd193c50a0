//! Cluster-mode scenarios on a local cluster (real NATS and Cassandra, shard
//! and gateway processes). Each ends by checking that every acknowledged
//! message is stored exactly once with gapless seqs and reached every
//! member's device.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chat_runtime::protocol::ServerFrame;
use confab_api::ring::{Ring, ShardId};
use confab_e2e::api::User;
use confab_e2e::checks;
use confab_e2e::cluster::LocalCluster;
use confab_e2e::device::Device;
use confab_e2e::load::{Pairs, load};
use confab_e2e::push;
use confab_operator::core::autoscale;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

async fn user(c: &LocalCluster, gw: usize, name: &str) -> Result<User> {
    c.api(gw).user(name).await
}

/// The 1:1 chat of `a` and `b`, opened by `a` through gateway `gw`.
async fn direct(c: &LocalCluster, gw: usize, a: &User, b: &User) -> Result<Uuid> {
    c.api(gw).direct(a, b).await
}

/// The end-of-scenario check ([`checks::check`]) through any gateway.
async fn check(
    c: &LocalCluster,
    reader: &User,
    chat: Uuid,
    senders: &[&Device],
    receivers: &[&Device],
) -> Result<()> {
    checks::check(&c.api(c.any_gateway()), reader, chat, senders, receivers).await
}

#[tokio::test]
async fn direct_and_group_chats_across_gateways_and_a_gateway_drain() -> Result<()> {
    let c = LocalCluster::start(3, 2).await?;
    let alice = user(&c, 0, "alice").await?;
    let bob = user(&c, 1, "bob").await?;
    let carol = user(&c, 1, "carol").await?;
    let direct = direct(&c, 0, &alice, &bob).await?;
    let group = c.api(1).group(&bob, "across", &[&alice, &carol]).await?;

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
    a.until(WAIT, |d| d.outbox.is_empty() && d.seqs(group).len() >= 41)
        .await?;
    b.until(WAIT, |d| d.outbox.is_empty() && d.seqs(direct).len() >= 40)
        .await?;
    k.until(WAIT, |d| d.seqs(group).len() >= 41).await?;
    check(&c, &alice, direct, &[&a], &[&b]).await?;
    check(&c, &bob, group, &[&b], &[&a, &k]).await?;
    load_is_reported(&c).await?;

    // Gateway 1 drains (as before its pod goes): Bob's and Carol's sessions
    // are told to reconnect, it stops being ready and refuses newcomers, and
    // on gateway 0 they resume with nothing lost.
    let remaining = c.drain_gateway(1, Duration::from_secs(8)).await?;
    ensure!(remaining == 0, "{remaining} sessions outlived the drain");
    for d in [&mut b, &mut k] {
        ensure!(
            d.until_closed(WAIT).await? == 1012,
            "closed with 1012, reconnect"
        );
    }
    let ready = c
        .http
        .get(format!("{}/readyz", c.gateway_url(1)))
        .send()
        .await?;
    ensure!(ready.status() == 503, "a draining gateway is not ready");
    let mut late = Device::new(&carol.token);
    ensure!(
        late.connect(&c.gateway_url(1)).await.is_err(),
        "a newcomer is refused"
    );
    ensure!(
        late.closed_with == Some(4001),
        "try again later: {:?}",
        late.closed_with
    );
    b.connect(&c.gateway_url(0)).await?;
    k.connect(&c.gateway_url(0)).await?;
    for i in 0..10 {
        a.send(group, &format!("a-after-{i}"), "after the drain")
            .await?;
        b.send(direct, &format!("b-after-{i}"), "after the drain")
            .await?;
    }
    // Every device holds both chats whole (its own sends come back too).
    let whole =
        |d: &Device| d.outbox.is_empty() && d.seqs(direct).len() >= 50 && d.seqs(group).len() >= 51;
    a.until(WAIT, whole).await?;
    b.until(WAIT, whole).await?;
    k.until(WAIT, |d| d.seqs(group).len() >= 51).await?;
    check(&c, &alice, direct, &[&a, &b], &[&a, &b]).await?;
    check(&c, &bob, group, &[&a, &b], &[&a, &b, &k]).await?;
    Ok(())
}

/// The shards' `Status` counts the 80 sends as sequenced messages (plus
/// the group's creation), each gateway's its 40 acknowledged sends by
/// latency, and the autoscaler's arithmetic turns two readings into a rate.
async fn load_is_reported(c: &LocalCluster) -> Result<()> {
    let first = c.reading().await?;
    let sequenced: u64 = first.shards.values().map(|r| r.messages).sum();
    ensure!(
        (80..=90).contains(&sequenced),
        "shards sequenced {sequenced}"
    );
    for (name, g) in &first.gateways {
        let acked: u64 = g.latency.iter().map(|b| b.1).sum();
        ensure!(acked == 40, "{name} acknowledged {acked} sends");
        ensure!(g.connections >= 1, "{name}: {} connections", g.connections);
    }
    let mut later = c.reading().await?;
    later.at = first.at + k8s_openapi::jiff::SignedDuration::from_secs(1);
    let load = autoscale::load(&first, &later);
    ensure!(load.sends_per_second == 0, "no sends in between: {load:?}");
    ensure!(load.connections >= 3 && load.gateways == 2, "{load:?}");
    Ok(())
}

#[tokio::test]
async fn a_gateway_killed_under_load_loses_nothing() -> Result<()> {
    let mut c = LocalCluster::start(3, 2).await?;
    let alice = user(&c, 0, "alice").await?;
    let bob = user(&c, 1, "bob").await?;
    let chat = direct(&c, 0, &alice, &bob).await?;
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
    a.until(WAIT, |d| d.outbox.is_empty()).await?;
    b.until(WAIT, |d| d.seqs(chat).len() >= total).await?;
    ensure!(a.acked.len() == total, "acked {} of {total}", a.acked.len());
    check(&c, &alice, chat, &[&a], &[&b]).await?;
    Ok(())
}

async fn pairs(c: &LocalCluster, n: usize) -> Result<Pairs> {
    Pairs::new(&[c.gateway_url(0), c.gateway_url(1)], n).await
}

async fn settle(c: &LocalCluster, p: Pairs, senders: Vec<Device>, rounds: usize) -> Result<()> {
    p.settle(&c.api(c.any_gateway()), senders, rounds, WAIT)
        .await
}

fn ring(epoch: u64, shards: &[u32]) -> Result<Ring> {
    let ids: Vec<ShardId> = shards.iter().copied().map(ShardId).collect();
    Ok(Ring::new(epoch, &ids, 64)?)
}

#[tokio::test]
async fn shards_added_and_removed_under_load_move_about_one_nth() -> Result<()> {
    let mut c = LocalCluster::start(3, 2).await?;
    let mut p = pairs(&c, 8).await?;
    let rounds = 120;
    let running = load(std::mem::take(&mut p.senders), p.chats.clone(), rounds);
    tokio::time::sleep(Duration::from_millis(400)).await;

    c.add_shard(3).await?;
    let (r1, r2) = (ring(1, &[0, 1, 2])?, ring(2, &[0, 1, 2, 3])?);
    let moved_up = c.change_ring(&r1, &r2).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r3 = ring(3, &[0, 2, 3])?;
    let moved_down = c.change_ring(&r2, &r3).await?;
    // As the operator removes a shard: drain it (it holds nothing after the
    // commit), then stop it; nothing may reach it any more.
    let left = c.drain_shard(1, Duration::from_secs(2)).await?;
    ensure!(left == 0, "the removed shard still held {left} chats");
    c.kill_shard(1);
    println!("ring 3 -> 4 shards moved {moved_up:.3} of chats; 4 -> 3 moved {moved_down:.3}");
    ensure!(
        (0.18..=0.32).contains(&moved_up),
        "adding a 4th shard moved {moved_up}"
    );
    ensure!(
        (0.18..=0.32).contains(&moved_down),
        "removing one of 4 moved {moved_down}"
    );

    let senders = running.await??;
    settle(&c, p, senders, rounds).await
}

#[tokio::test]
async fn a_shard_killed_under_load_fails_over_to_its_neighbours() -> Result<()> {
    let mut c = LocalCluster::start(3, 2).await?;
    let mut p = pairs(&c, 8).await?;
    let rounds = 120;
    let running = load(std::mem::take(&mut p.senders), p.chats.clone(), rounds);
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.kill_shard(2);
    // The operator's failover: once the shard has been gone for longer than
    // its lease (3 s here), a ring without it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let moved = c
        .change_ring(&ring(1, &[0, 1, 2])?, &ring(2, &[0, 1])?)
        .await?;
    println!("failover moved {moved:.3} of chats");
    let senders = running.await??;
    settle(&c, p, senders, rounds).await?;

    // The killed shard comes back remembering ring 1. It catches up with
    // ring 2 from the others' records before it takes a lease, so it
    // sequences nothing the failover gave away, and its rejoin is an
    // ordinary change from epoch 2.
    c.restart_shard(2).await?;
    let s = c.status(2).await?;
    ensure!(s.ring_epoch == 2 && s.lease_held, "{s:?}");
    c.change_ring(&ring(2, &[0, 1])?, &ring(3, &[0, 1, 2])?)
        .await?;
    ensure!(c.status(2).await?.ring_epoch == 3);
    let (a, b) = (user(&c, 0, "back-a").await?, user(&c, 1, "back-b").await?);
    let chat = direct(&c, 0, &a, &b).await?;
    ensure!(c.api(1).say(&b, chat, "after the rejoin").await? == 1);
    Ok(())
}

/// A rolling update's shard restart: SIGTERM drains the shard and gives its
/// lease back, so its next incarnation takes over without waiting out the
/// lease time (3 s here); chats keep working.
#[tokio::test]
async fn a_shard_stopped_gracefully_hands_its_lease_over_at_once() -> Result<()> {
    let mut c = LocalCluster::start(3, 1).await?;
    let mut chats = Vec::new();
    for _ in 0..8 {
        let (a, b) = (user(&c, 0, "a").await?, user(&c, 0, "b").await?);
        let chat = direct(&c, 0, &a, &b).await?;
        ensure!(c.api(0).say(&a, chat, "before").await? == 1);
        chats.push((a, chat));
    }
    ensure!(
        c.lease_holder(0).await?.is_some(),
        "shard 0 holds its lease"
    );
    c.stop_shard(0).await?;
    ensure!(
        c.lease_holder(0).await?.is_none(),
        "a shard stopped by SIGTERM releases its lease"
    );
    let stopped = std::time::Instant::now();
    c.restart_shard(0).await?;
    println!(
        "shard 0 holds its lease again {:?} after its graceful stop",
        stopped.elapsed()
    );
    for (a, chat) in &chats {
        ensure!(c.api(0).say(a, *chat, "after").await? == 2);
    }
    Ok(())
}

/// Push notifications in a cluster: a session on one gateway is seen by
/// the shards and the other gateway through the session cache, jobs travel
/// through the JetStream queue to the notifier process, and its retries,
/// forgotten tokens and dead letters behave as standalone's.
#[tokio::test]
async fn offline_members_are_pushed_through_the_notifier() -> Result<()> {
    let c = LocalCluster::start(3, 2).await?;
    let t = push::Target {
        gateways: vec![c.api(0), c.api(1)],
        notifier_metrics: c.notifier_metrics(),
    };
    push::offline_members_get_pushes(&t).await?;
    push::failures_are_retried_forgotten_or_dead_lettered(&t).await?;
    Ok(())
}

#[tokio::test]
async fn nats_restarted_under_load_recovers_by_itself() -> Result<()> {
    let mut c = LocalCluster::start_with(3, 2, true).await?;
    let mut p = pairs(&c, 6).await?;
    let rounds = 100;
    let chats = p.chats.clone();
    let mut senders = std::mem::take(&mut p.senders);
    let running = tokio::spawn(async move {
        for r in 0..rounds {
            for (d, chat) in senders.iter_mut().zip(&chats) {
                // A send that cannot be written stays pending; the
                // reconnect re-sends it.
                if d.send(*chat, &format!("m-{r}"), "load").await.is_err() {
                    d.reconnect(WAIT).await?;
                }
                loop {
                    match d.next_frame(Duration::from_millis(1)).await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => {
                            d.reconnect(WAIT).await?;
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(senders)
    });
    // An idle device: events published while NATS was away may be lost to
    // it, so once NATS is back its gateway has its session catch up from the
    // store in place — a fresh `synced`, and the connection stays open.
    let watcher = user(&c, 1, "watcher").await?;
    let mut idle = Device::new(&watcher.token);
    idle.connect(&c.gateway_url(1)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // kill -9 NATS with traffic in flight; it comes back after a second with
    // its JetStream store (leases, ownership records). Nothing else is touched.
    c.restart_nats(Duration::from_secs(1)).await?;
    loop {
        match idle.next_frame(WAIT).await.context("the idle session")? {
            Some(ServerFrame::Synced { .. }) => break,
            Some(_) => continue,
            None => anyhow::bail!("the idle session did not catch up"),
        }
    }
    let senders = running.await??;
    settle(&c, p, senders, rounds).await
}

/// Commands shard `n` received in wire version `v` (its `/metrics`).
async fn wire_commands(c: &LocalCluster, n: usize, v: u8) -> Result<u64> {
    let text = c.shard_metrics(n).await?;
    let series = format!("confab_shard_commands_total{{version=\"{v}\"}} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap_or(0)))
}

/// A cluster mid-upgrade: shard 0 and gateway 1 run as the older build
/// (gateway↔shard wire version 1 only), the rest as this one. Under load
/// every pair of processes agrees on a version, shard 0 is rolled onto the
/// new build (stopped as Kubernetes does, started again), and every
/// acknowledged message is stored once and delivered. 24 pairs put chats of
/// senders and receivers of both gateways on every shard.
#[tokio::test]
async fn a_mixed_version_cluster_keeps_serving_through_a_shard_upgrade() -> Result<()> {
    let mut c = LocalCluster::start_mixed(3, 2, false, &["shard-0", "gateway-1"]).await?;
    let mut p = pairs(&c, 24).await?;
    let rounds = 60;
    let running = load(std::mem::take(&mut p.senders), p.chats.clone(), rounds);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure!(
        wire_commands(&c, 0, 2).await? == 0,
        "the older shard got version 2"
    );
    c.stop_shard(0).await?;
    c.older.retain(|p| p != "shard-0");
    c.restart_shard(0).await?;
    let senders = running.await??;
    settle(&c, p, senders, rounds).await?;
    let mut counts = Vec::new();
    for n in 0..3 {
        counts.push((
            wire_commands(&c, n, 1).await?,
            wire_commands(&c, n, 2).await?,
        ));
    }
    println!("commands by wire version (1, 2), shards 0 (upgraded), 1, 2: {counts:?}");
    for (n, (v1, v2)) in counts.iter().enumerate() {
        ensure!(
            *v1 > 0 && *v2 > 0,
            "shard {n} (new build) speaks 1 with the older gateway and 2 with the new one: {v1}, {v2}"
        );
    }
    Ok(())
}
