//! Smoke tests for the CQL store (`CONFAB_CQL_NODE`, a Cassandra node started
//! by `e2e/scripts/cassandra.sh`; production runs ScyllaDB with the same
//! protocol): schema changes, prepared inserts and paged reads with the
//! scylla driver.
//!
//! Each run works in its own uniquely named keyspace and drops it at the end.

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use confab_e2e::service_env;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::PagingState;
use tokio::time::timeout;

const ROWS: i32 = 250;
const PAGE: i32 = 50;

/// A keyspace name unique to this process and moment (CQL identifiers:
/// lowercase letters, digits and `_`, at most 48 characters).
fn unique_keyspace() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "confab_smoke_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

async fn connect() -> Result<Session> {
    let node = service_env("CONFAB_CQL_NODE");
    let session = timeout(
        Duration::from_secs(30),
        SessionBuilder::new()
            .known_node(&node)
            .connection_timeout(Duration::from_secs(5))
            .build(),
    )
    .await
    .with_context(|| format!("connecting to CQL node {node} timed out"))?
    .with_context(|| format!("cannot connect to CQL node {node}"))?;
    Ok(session)
}

#[tokio::test]
async fn prepared_inserts_and_paged_reads_in_clustering_order() -> Result<()> {
    let session = connect().await?;
    let ks = unique_keyspace();
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {ks} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await
        .context("creating the keyspace")?;

    let result = exercise(&session, &ks).await;

    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .context("dropping the keyspace")?;
    result
}

async fn exercise(session: &Session, ks: &str) -> Result<()> {
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {ks}.messages (room text, seq int, body text, \
                 PRIMARY KEY (room, seq)) WITH CLUSTERING ORDER BY (seq ASC)"
            ),
            &[],
        )
        .await
        .context("creating the table")?;

    let insert = session
        .prepare(format!(
            "INSERT INTO {ks}.messages (room, seq, body) VALUES (?, ?, ?)"
        ))
        .await?;
    // Insert out of order (97 is coprime with 250), so the read order below
    // comes from the clustering key, not from the order of the writes.
    for i in 0..ROWS {
        let seq = (i * 97) % ROWS;
        session
            .execute_unpaged(&insert, ("lobby", seq, format!("message {seq}")))
            .await
            .with_context(|| format!("inserting seq {seq}"))?;
    }
    // A row in another partition must not show up in the lobby's pages.
    session
        .execute_unpaged(&insert, ("elsewhere", 0, "other room"))
        .await?;

    let mut select = session
        .prepare(format!(
            "SELECT seq, body FROM {ks}.messages WHERE room = ?"
        ))
        .await?;
    select.set_page_size(PAGE);

    // Manual paging: one page per request, resumed from the paging state.
    let mut seen: Vec<i32> = Vec::new();
    let mut pages = 0;
    let mut paging_state = PagingState::start();
    loop {
        let (res, next) = session
            .execute_single_page(&select, ("lobby",), paging_state)
            .await?;
        let rows = res.into_rows_result()?;
        ensure!(
            rows.rows_num() <= PAGE as usize,
            "page {pages} has {} rows, more than the page size {PAGE}",
            rows.rows_num()
        );
        for row in rows.rows::<(i32, String)>()? {
            let (seq, body) = row?;
            assert_eq!(body, format!("message {seq}"));
            seen.push(seq);
        }
        pages += 1;
        ensure!(
            pages <= 2 * ROWS / PAGE,
            "too many pages: paging does not advance"
        );
        match next.into_paging_control_flow() {
            ControlFlow::Break(()) => break,
            ControlFlow::Continue(state) => paging_state = state,
        }
    }
    let expected: Vec<i32> = (0..ROWS).collect();
    assert_eq!(seen, expected, "every row once, in clustering order");
    ensure!(
        pages >= ROWS / PAGE,
        "{ROWS} rows came in {pages} pages of at most {PAGE}"
    );

    // The driver's own pager gives the same rows.
    let streamed: Vec<(i32, String)> = session
        .execute_iter(select, ("lobby",))
        .await?
        .rows_stream::<(i32, String)>()?
        .try_collect()
        .await?;
    let streamed: Vec<i32> = streamed.into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(streamed, expected);
    Ok(())
}
