//! `confab-bench wire`: what the gateway↔shard wire versions cost — bytes,
//! and encode and decode time — for a typical `Send` command (8 texts of
//! 100 bytes, one device's burst to one chat) and its answer. No network, no
//! server: the serialization alone, per message, median of 5 rounds.

use std::time::Instant;

use anyhow::Result;
use chat_runtime::model::Content;
use chat_runtime::shard::remote::Answer;
use chat_runtime::shard::wire::{LATEST, Version};
use chat_runtime::shard::{Command, Reply, SendItem, Sent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

fn command() -> Command {
    let chat = Uuid::now_v7();
    Command::Send {
        user: Uuid::now_v7(),
        items: (0..8)
            .map(|i| SendItem {
                chat,
                client_msg_id: format!("c-{}-{i}", Uuid::now_v7()),
                content: Content::Text {
                    body: "x".repeat(100),
                },
            })
            .collect(),
        origin: Some(42),
    }
}

fn answer() -> Answer {
    let sent = (0..8)
        .map(|i| {
            Ok(Sent {
                seq: 1_000 + i,
                sent_at: 1_765_000_000_000 + i as i64,
                duplicate: false,
            })
        })
        .collect();
    Answer::Done(Ok(Reply::Sent(sent)))
}

/// `(bytes, ns to encode, ns to decode)` of `value` in `v`.
fn measure<T: Serialize + DeserializeOwned>(v: Version, value: &T, n: u32) -> (usize, f64, f64) {
    let bytes = v.encode(value);
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(v.encode(std::hint::black_box(value)));
        }
        let enc = t.elapsed().as_nanos() as f64 / f64::from(n);
        let t = Instant::now();
        for _ in 0..n {
            let back: T = v.decode(std::hint::black_box(&bytes)).expect("reads back");
            std::hint::black_box(back);
        }
        let dec = t.elapsed().as_nanos() as f64 / f64::from(n);
        rounds.push((enc, dec));
    }
    rounds.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
    let (enc, dec) = rounds[2];
    (bytes.len(), enc, dec)
}

pub fn run(n: u32) -> Result<()> {
    println!("wire version     message          bytes  encode ns  decode ns");
    for v in [Version::JSON, LATEST] {
        let name = if v == Version::JSON {
            "1 (JSON)"
        } else {
            "2 (MessagePack)"
        };
        let (b, e, d) = measure(v, &command(), n);
        println!("{name:<16} send ×8 command {b:>6} {e:>10.0} {d:>10.0}");
        let (b, e, d) = measure(v, &answer(), n);
        println!("{name:<16} its answer      {b:>6} {e:>10.0} {d:>10.0}");
    }
    Ok(())
}
