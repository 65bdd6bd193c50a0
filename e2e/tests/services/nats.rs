//! Smoke tests for NATS with JetStream (`CONFAB_NATS_URL`, started by
//! `e2e/scripts/nats.sh`): core pub/sub and request/reply, a JetStream
//! work-queue stream with a pull consumer, and a KV bucket with a TTL.
//!
//! Every test uses subjects, streams and buckets with a unique suffix, so
//! reruns against the same server never collide.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use async_nats::jetstream::{self, consumer, kv, stream};
use confab_e2e::service_env;
use futures::StreamExt;
use tokio::time::{Instant, sleep, timeout};

/// How long any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(10);

/// A name unique to this process and moment: letters, digits and `_` only,
/// valid as a subject token, stream name and bucket name.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn connect() -> Result<async_nats::Client> {
    let url = service_env("CONFAB_NATS_URL");
    let client = timeout(
        STEP,
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str()),
    )
    .await
    .with_context(|| format!("connecting to NATS at {url} timed out"))?
    .with_context(|| format!("cannot connect to NATS at {url}"))?;
    Ok(client)
}

/// Waits for the next item of a stream, failing after [`STEP`].
async fn next<S: futures::Stream + Unpin>(s: &mut S, what: &str) -> Result<S::Item> {
    timeout(STEP, s.next())
        .await
        .with_context(|| format!("timed out waiting for {what}"))?
        .with_context(|| format!("stream ended while waiting for {what}"))
}

#[tokio::test]
async fn pub_sub_round_trip() -> Result<()> {
    let client = connect().await?;
    let subject = unique("smoke.pubsub");
    let mut sub = client.subscribe(subject.clone()).await?;
    client.flush().await?;

    for i in 0..3 {
        client
            .publish(subject.clone(), format!("hello {i}").into())
            .await?;
    }
    client.flush().await?;

    for i in 0..3 {
        let msg = next(&mut sub, "a published message").await?;
        assert_eq!(msg.subject.as_str(), subject);
        assert_eq!(msg.payload.as_ref(), format!("hello {i}").as_bytes());
    }
    sub.unsubscribe().await?;
    Ok(())
}

#[tokio::test]
async fn request_reply_with_responder() -> Result<()> {
    let client = connect().await?;
    let subject = unique("smoke.echo");

    let mut requests = client.subscribe(subject.clone()).await?;
    client.flush().await?;
    let responder_client = client.clone();
    let responder = tokio::spawn(async move {
        let mut answered = 0usize;
        while let Some(req) = requests.next().await {
            let Some(reply) = req.reply else { continue };
            let body = String::from_utf8_lossy(&req.payload).to_uppercase();
            responder_client.publish(reply, body.into()).await?;
            answered += 1;
            if answered == 3 {
                break;
            }
        }
        responder_client.flush().await?;
        anyhow::Ok(answered)
    });

    for word in ["alpha", "beta", "gamma"] {
        let resp = timeout(STEP, client.request(subject.clone(), word.into()))
            .await
            .context("request timed out")??;
        assert_eq!(resp.payload.as_ref(), word.to_uppercase().as_bytes());
    }
    let answered = timeout(STEP, responder).await???;
    assert_eq!(answered, 3);
    Ok(())
}

#[tokio::test]
async fn jetstream_work_queue_pull_consumer() -> Result<()> {
    const JOBS: usize = 100;
    let client = connect().await?;
    let js = jetstream::new(client);
    let name = unique("SMOKE_JOBS");
    let subject = format!("{name}.jobs");

    let mut stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("creating the work-queue stream")?;

    let result = async {
        for i in 0..JOBS {
            js.publish(subject.clone(), format!("job-{i}").into())
                .await?
                .await
                .with_context(|| format!("no JetStream ack for job {i}"))?;
        }
        let info = stream.info().await?;
        ensure!(
            info.state.messages == JOBS as u64,
            "stream holds {} messages, expected {JOBS}",
            info.state.messages
        );

        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("workers".to_string()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .context("creating the pull consumer")?;

        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < JOBS {
            ensure!(
                Instant::now() < deadline,
                "only {} of {JOBS} jobs consumed",
                seen.len()
            );
            let mut batch = consumer
                .fetch()
                .max_messages(30)
                .expires(Duration::from_secs(2))
                .messages()
                .await?;
            while let Some(msg) = timeout(STEP, batch.next())
                .await
                .context("fetch timed out")?
            {
                let msg = msg.map_err(|e| anyhow!(e))?;
                let job = String::from_utf8(msg.payload.to_vec())?;
                // Double ack: the server confirms the ack, so nothing is redelivered.
                msg.double_ack().await.map_err(|e| anyhow!(e))?;
                if !seen.insert(job.clone()) {
                    bail!("{job} was delivered twice");
                }
            }
        }
        let expected: BTreeSet<String> = (0..JOBS).map(|i| format!("job-{i}")).collect();
        assert_eq!(seen, expected);

        // Nothing left to deliver, and the work queue dropped every acked job.
        let mut rest = consumer.fetch().max_messages(10).messages().await?;
        if let Some(extra) = timeout(STEP, rest.next())
            .await
            .context("fetch timed out")?
        {
            let extra = extra.map_err(|e| anyhow!(e))?;
            bail!("redelivered after ack: {:?}", extra.payload);
        }
        let info = stream.info().await?;
        ensure!(
            info.state.messages == 0,
            "work queue still holds {} messages after all acks",
            info.state.messages
        );
        Ok(())
    }
    .await;

    js.delete_stream(&name).await?;
    result
}

#[tokio::test]
async fn jetstream_kv_with_ttl_cas_and_watch() -> Result<()> {
    const TTL: Duration = Duration::from_secs(2);
    let client = connect().await?;
    let js = jetstream::new(client);
    let bucket = unique("smoke_kv");

    let store = js
        .create_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 5,
            max_age: TTL,
            ..Default::default()
        })
        .await
        .context("creating the KV bucket")?;

    let result = async {
        // put / get
        let rev1 = store.put("room.1", "v1".into()).await?;
        let got = store
            .get("room.1")
            .await?
            .context("key missing after put")?;
        assert_eq!(got.as_ref(), b"v1");

        // A watcher started now sees the next change only.
        let mut watch = store.watch("room.1").await?;

        // compare-and-set by revision: the right revision wins...
        let rev2 = store.update("room.1", "v2".into(), rev1).await?;
        ensure!(rev2 > rev1, "revision did not grow: {rev1} -> {rev2}");
        // ...and the stale one fails.
        match store.update("room.1", "stale".into(), rev1).await {
            Ok(rev) => bail!("update with stale revision {rev1} succeeded (rev {rev})"),
            Err(e) => assert_eq!(e.kind(), kv::UpdateErrorKind::WrongLastRevision, "{e}"),
        }
        let entry = store.entry("room.1").await?.context("key missing")?;
        assert_eq!(entry.value.as_ref(), b"v2");
        assert_eq!(entry.revision, rev2);

        let seen = next(&mut watch, "the watched update")
            .await?
            .map_err(|e| anyhow!(e))?;
        assert_eq!(seen.key, "room.1");
        assert_eq!(seen.value.as_ref(), b"v2");
        assert_eq!(seen.revision, rev2);
        assert_eq!(seen.operation, kv::Operation::Put);

        // The entry expires after max_age.
        let written = Instant::now();
        let deadline = written + TTL + Duration::from_secs(15);
        loop {
            match store.get("room.1").await? {
                None => break,
                Some(_) if Instant::now() > deadline => {
                    bail!(
                        "entry still present {:?} after its TTL of {TTL:?}",
                        written.elapsed()
                    )
                }
                Some(_) => sleep(Duration::from_millis(250)).await,
            }
        }
        ensure!(
            written.elapsed() >= TTL - Duration::from_millis(500),
            "entry vanished after {:?}, before its TTL of {TTL:?}",
            written.elapsed()
        );
        Ok(())
    }
    .await;

    js.delete_key_value(&bucket).await?;
    result
}
