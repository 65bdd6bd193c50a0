//! `local-cluster`: starts the local cluster of the e2e harness (3 shard and
//! 2 gateway processes against the NATS and Cassandra named by
//! `CONFAB_NATS_URL` and `CONFAB_CQL_NODE`) and keeps it up until Ctrl-C, for
//! benchmarks and manual poking:
//!
//! ```sh
//! CONFAB_RUNTIME_BIN=target/release/chat-runtime cargo run -p confab-e2e --bin local-cluster
//! target/release/confab-bench --url http://<gateway> direct
//! ```

use anyhow::Result;
use confab_e2e::cluster::LocalCluster;

#[tokio::main]
async fn main() -> Result<()> {
    let shards = std::env::args().nth(1).map_or(Ok(3), |s| s.parse())?;
    let cluster = LocalCluster::start(shards, 2).await?;
    for i in 0..cluster.gateways.len() {
        println!("gateway {i}: {}", cluster.gateway_url(i));
    }
    println!("{shards} shards ready; Ctrl-C stops the cluster");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
