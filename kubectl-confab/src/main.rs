//! `kubectl-confab`: the kubectl plugin's command line (`kubectl confab …`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use confab_api::cluster::requests::{PodRef, Request};
use kube::Client;
use kubectl_confab::{Error, bundle, request, ring, snapshot, status};

/// Confab ChatClusters from the command line: status, ring placement,
/// drains, forced failover and support bundles.
#[derive(Parser, Debug)]
#[command(name = "kubectl confab", bin_name = "kubectl confab", version, about)]
struct Cli {
    /// Namespace of the ChatCluster (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The ring, every shard and gateway, the load and the autoscaler.
    Status {
        /// The ChatCluster's name.
        cluster: String,
    },
    /// The shard each chat is placed on (and after a change in flight).
    Ring {
        /// The ChatCluster's name.
        cluster: String,
        /// Chat ids (UUIDs).
        #[arg(required = true)]
        chats: Vec<String>,
    },
    /// Drains a gateway (its sessions move to the others) or a shard (it
    /// flushes and releases its chats), then deletes its pod.
    Drain {
        /// The ChatCluster's name.
        cluster: String,
        #[command(subcommand)]
        pod: Target,
        /// How long to wait for the operator to carry it out.
        #[arg(long, default_value = "120s", value_parser = seconds)]
        timeout: Duration,
    },
    /// Takes a shard out of the ring at once (its chats move to its ring
    /// neighbours without asking it), then deletes its pod; it rejoins
    /// when Ready.
    Failover {
        /// The ChatCluster's name.
        cluster: String,
        #[command(subcommand)]
        pod: ShardOnly,
        /// How long to wait for the operator to carry it out.
        #[arg(long, default_value = "120s", value_parser = seconds)]
        timeout: Duration,
    },
    /// Writes a support bundle (.tar.gz; no Secret is read).
    SupportBundle {
        /// The ChatCluster's name.
        cluster: String,
        /// Where to write it (default: confab-<namespace>-<cluster>.tar.gz).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum Target {
    /// A gateway pod, by name.
    Gateway { pod: String },
    /// A shard, by ordinal.
    Shard { ordinal: u32 },
}

#[derive(Subcommand, Debug)]
enum ShardOnly {
    /// A shard, by ordinal.
    Shard { ordinal: u32 },
}

/// `120s`, `2m` or a plain number of seconds.
fn seconds(s: &str) -> Result<Duration, String> {
    let (n, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (s.strip_suffix('s').unwrap_or(s), 1),
    };
    n.parse::<u64>()
        .map(|n| Duration::from_secs(n * unit))
        .map_err(|_| format!("{s:?} is not a duration like 120s or 2m"))
}

async fn run(cli: Cli) -> Result<String, Error> {
    let client = Client::try_default().await?;
    let ns = cli
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    match cli.command {
        Command::Status { cluster } => Ok(status::render(&snapshot(&client, &ns, &cluster).await?)),
        Command::Ring { cluster, chats } => {
            let snap = snapshot(&client, &ns, &cluster).await?;
            let rings = snap.cluster.status.and_then(|s| s.ring).unwrap_or_default();
            chats.iter().map(|c| ring::placement(&rings, c)).collect()
        }
        Command::Drain {
            cluster,
            pod,
            timeout,
        } => {
            let pod = match pod {
                Target::Gateway { pod } => PodRef::Gateway(pod),
                Target::Shard { ordinal } => PodRef::Shard(ordinal),
            };
            request::send(&client, &ns, &cluster, &Request::Drain(pod), timeout).await
        }
        Command::Failover {
            cluster,
            pod: ShardOnly::Shard { ordinal },
            timeout,
        } => request::send(&client, &ns, &cluster, &Request::FailOver(ordinal), timeout).await,
        Command::SupportBundle { cluster, output } => {
            let out = output.unwrap_or_else(|| format!("confab-{ns}-{cluster}.tar.gz").into());
            let files = bundle::write(&client, &ns, &cluster, &out).await?;
            Ok(format!("wrote {} ({} files)", out.display(), files.len()))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(Cli::parse()).await {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed_and_reads_durations() {
        Cli::command().debug_assert();
        assert_eq!(seconds("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(seconds("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(seconds("15"), Ok(Duration::from_secs(15)));
        assert!(seconds("soon").is_err());
        let cli = Cli::try_parse_from([
            "kubectl-confab",
            "-n",
            "prod",
            "failover",
            "chat",
            "shard",
            "2",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Failover { ref cluster, pod: ShardOnly::Shard { ordinal: 2 }, .. } if cluster == "chat"
        ));
        assert_eq!(cli.namespace.as_deref(), Some("prod"));
    }
}
