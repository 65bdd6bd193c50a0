//! Which shard a chat is placed on: the committed ring of the ChatCluster's
//! status (and the one a change in flight moves to), computed with the same
//! placement the runtime uses.

use confab_api::cluster::RingStatus;
use confab_api::ring::{Ring, ShardId};
use uuid::Uuid;

use crate::Error;

/// `chat`'s shard in the ring `status` reports, as lines to print.
pub fn placement(status: &RingStatus, chat: &str) -> Result<String, Error> {
    let id = Uuid::parse_str(chat)
        .map_err(|e| Error::Usage(format!("{chat:?} is not a chat id (a UUID): {e}")))?;
    let ring = |epoch: u64, members: &[u32]| {
        let shards: Vec<ShardId> = members.iter().copied().map(ShardId).collect();
        Ring::new(epoch, &shards, status.vnodes_per_shard)
            .map_err(|e| Error::Refused(format!("the ring in status is unusable: {e}")))
    };
    if status.members.is_empty() {
        return Err(Error::Refused("the cluster has no ring yet".into()));
    }
    let committed = ring(status.epoch, &status.members)?;
    let mut out = format!(
        "chat {id}: shard {} (ring epoch {}, shards {:?})\n",
        committed.owner(id).0,
        status.epoch,
        status.members
    );
    if let Some(p) = &status.pending {
        let next = ring(p.epoch, &p.members)?;
        out.push_str(&format!(
            "  after the change in flight ({:?}): shard {} (ring epoch {}, shards {:?})\n",
            p.phase,
            next.owner(id).0,
            p.epoch,
            p.members
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_api::cluster::{PendingRing, RingPhase};

    #[test]
    fn placement_is_the_runtimes_and_names_the_pending_ring() {
        let chat = "0190d7a4-6b1e-7c3a-9f00-000000000001";
        let mut status = RingStatus {
            epoch: 3,
            members: vec![0, 1, 2],
            vnodes_per_shard: 64,
            ..RingStatus::default()
        };
        let owner = Ring::new(3, &[ShardId(0), ShardId(1), ShardId(2)], 64)
            .unwrap()
            .owner(Uuid::parse_str(chat).unwrap());
        let out = placement(&status, chat).unwrap();
        assert_eq!(
            out,
            format!(
                "chat {chat}: shard {} (ring epoch 3, shards [0, 1, 2])\n",
                owner.0
            )
        );
        status.pending = Some(PendingRing {
            epoch: 4,
            members: vec![0],
            phase: RingPhase::Prepared,
        });
        let out = placement(&status, chat).unwrap();
        assert!(
            out.ends_with(
                "after the change in flight (Prepared): shard 0 (ring epoch 4, shards [0])\n"
            ),
            "{out}"
        );
        assert!(matches!(placement(&status, "nope"), Err(Error::Usage(_))));
        assert!(matches!(
            placement(&RingStatus::default(), chat),
            Err(Error::Refused(_))
        ));
    }
}
