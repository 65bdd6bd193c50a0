//! `confab-bench media`: one large file through a bucket backend, raw and
//! through the server. Raw is `object_store` streaming the same bytes with
//! the same part size the server uses; through the server is `POST
//! /v1/media` (chunked, no Content-Length) and `GET /v1/media/{id}`.
//! The server's RSS is sampled every 20 ms while it streams, to show it
//! stays flat however large the file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chat_runtime::media::buckets;
use confab_api::config::BucketConfig;
use futures::{Stream, StreamExt};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::{Target, rss_kib, sample_rss};

const MIB: u64 = 1 << 20;
/// The server's part size (see `chat_runtime::media::service`).
const PART: usize = 5 << 20;

/// Extra server flags: room for the file, and the buckets if given.
pub fn server_args(mib: u64, buckets: Option<&Path>) -> Vec<String> {
    let mut args = vec!["--media-max-bytes".into(), ((mib + 1) * MIB).to_string()];
    if let Some(b) = buckets {
        args.extend(["--media-buckets".into(), b.to_string_lossy().into_owned()]);
    }
    args
}

/// `mib` MiB of "video": an MP4 signature, then pseudo-random bytes made
/// on the fly (never held in memory), 1 MiB per chunk.
fn video(mib: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::iter(0..mib).map(|i| {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ i;
        let mut chunk = Vec::with_capacity(MIB as usize);
        while chunk.len() < MIB as usize {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.extend_from_slice(&state.to_le_bytes());
        }
        if i == 0 {
            chunk[..12].copy_from_slice(b"\x00\x00\x00\x18ftypmp42");
        }
        Ok(Bytes::from(chunk))
    })
}

fn mb_per_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

fn first_bucket(path: Option<&Path>, local: &Path) -> Result<BucketConfig> {
    Ok(match path {
        Some(p) => {
            let list: Vec<BucketConfig> = serde_json::from_str(&std::fs::read_to_string(p)?)
                .with_context(|| format!("{} is not a list of buckets", p.display()))?;
            list.into_iter().next().context("no bucket in the list")?
        }
        None => chat_runtime::standalone::local_bucket(local, u64::MAX),
    })
}

/// Raw backend speed: streams `mib` MiB into `bucket` and reads it back.
async fn raw(bucket: &BucketConfig, mib: u64) -> Result<(Duration, Duration)> {
    let b = buckets::open(bucket)?;
    let path = object_store::path::Path::from(format!("bench/{}", uuid::Uuid::new_v4()));
    let started = Instant::now();
    let mut w =
        BufWriter::with_capacity(b.store.clone(), path.clone(), PART).with_max_concurrency(2);
    let mut data = Box::pin(video(mib));
    while let Some(chunk) = data.next().await {
        w.put(chunk?).await?;
    }
    w.shutdown().await?;
    let put = started.elapsed();
    let started = Instant::now();
    let mut body = b.store.get(&path).await?.into_stream();
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk?.len() as u64;
    }
    let get = started.elapsed();
    b.store.delete(&path).await?;
    if n != mib * MIB {
        bail!("raw read {n} bytes of {}", mib * MIB);
    }
    Ok((put, get))
}

pub async fn run(target: &Target, mib: u64, buckets_file: Option<&Path>) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let bucket = first_bucket(buckets_file, scratch.path())?;
    println!(
        "media: {mib} MiB through bucket {} ({})",
        bucket.name, bucket.provider
    );
    let (put, get) = raw(&bucket, mib).await?;
    let bytes = mib * MIB;
    println!(
        "raw object_store:  put {:8.1} MB/s   get {:8.1} MB/s",
        mb_per_s(bytes, put),
        mb_per_s(bytes, get)
    );

    let user = target
        .user(format!("+1{:010}", rand::random::<u32>()))
        .await?;
    let pid = target.pid;
    let idle = pid.and_then(rss_kib).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = pid.map(|p| sample_rss(p, stop.clone()));
    let started = Instant::now();
    let resp = target
        .http
        .post(format!("http://{}/v1/media", target.addr))
        .bearer_auth(&user.token)
        .header("content-type", "video/mp4")
        .body(reqwest::Body::wrap_stream(video(mib)))
        .send()
        .await?;
    let status = resp.status();
    let up: serde_json::Value = resp.json().await?;
    let upload = started.elapsed();
    if !status.is_success() {
        bail!("upload: {status} {up}");
    }
    let id = up["media_id"].as_str().context("media_id")?;
    let started = Instant::now();
    let resp = target
        .http
        .get(format!("http://{}/v1/media/{id}", target.addr))
        .bearer_auth(&user.token)
        .send()
        .await?;
    let received = AtomicU64::new(0);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        received.fetch_add(chunk?.len() as u64, Ordering::Relaxed);
    }
    let download = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = match sampler {
        Some(s) => s.await?,
        None => 0,
    };
    if received.load(Ordering::Relaxed) != bytes {
        bail!(
            "downloaded {} bytes of {bytes}",
            received.load(Ordering::Relaxed)
        );
    }
    println!(
        "through the server: upload {:6.1} MB/s ({:.2}× raw put)   download {:6.1} MB/s ({:.2}× raw get)",
        mb_per_s(bytes, upload),
        put.as_secs_f64() / upload.as_secs_f64(),
        mb_per_s(bytes, download),
        get.as_secs_f64() / download.as_secs_f64()
    );
    if pid.is_some() {
        println!(
            "server RSS: {:.1} MiB before, peak {:.1} MiB while streaming {mib} MiB",
            idle as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
