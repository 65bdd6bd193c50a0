//! The Rust example of `docs/protocol.md` ("Build a client") is the code
//! of [`hello`], which works against a real server.

use anyhow::{Context, Result, ensure};
use confab_client::protocol::model::Content;
use confab_client::{Client, Error, Event, Options, Rest};

use super::harness::{Server, WAIT};

/// Two users, one message: the doc's example between its markers.
async fn hello(url: String) -> Result<(), Error> {
    // doc:start
    let (alice, bob) = (Rest::new(&url), Rest::new(&url));
    alice
        .register("+15550000001", "Alice", "correct horse")
        .await?;
    bob.register("+15550000002", "Bob", "correct horse").await?;
    let a = alice.login("+15550000001", "correct horse").await?;
    let b = bob.login("+15550000002", "correct horse").await?;

    // Bob's device: `connect` returns once it has resumed; events follow.
    let (bob_device, mut events) = Client::connect(Options::new(&url, &b.token)).await?;

    // Alice opens the 1:1 chat and sends; `send_text` returns once stored.
    let chat = alice.with_token(&a.token).direct("+15550000002").await?;
    let (alice_device, _) = Client::connect(Options::new(&url, &a.token)).await?;
    let sent = alice_device.send_text(chat.chat_id, "hi Bob!").await?;
    println!("stored at seq {}", sent.seq);

    // Each message once, after a reconnect too.
    while let Some(event) = events.next().await {
        if let Event::Message(m) = event
            && let Content::Text { body } = m.content
        {
            println!("Bob got: {body}");
            break;
        }
    }
    alice_device.close().await;
    bob_device.close().await;
    // doc:end
    Ok(())
}

/// The lines between `hello`'s `doc:start` and `doc:end` markers, unindented.
fn example_body() -> Result<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/standalone/docs.rs"
    ))?;
    let start = text.find("// doc:start\n").context("doc:start")? + "// doc:start\n".len();
    let end = text.find("    // doc:end").context("doc:end")?;
    Ok(text[start..end]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[test]
fn the_doc_shows_the_example_as_it_is() -> Result<()> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))?;
    let start = doc
        .find("```rust\n")
        .context("a rust block in docs/protocol.md")?
        + "```rust\n".len();
    let end = start + doc[start..].find("```").context("its end")?;
    let body = example_body()?;
    ensure!(
        doc[start..end].contains(&body),
        "docs/protocol.md's Rust example differs from `hello` in \
         client/tests/standalone/docs.rs; it should read:\n{body}"
    );
    Ok(())
}

#[tokio::test]
async fn the_example_sends_and_receives() -> Result<()> {
    let server = Server::start(&[]).await?;
    tokio::time::timeout(WAIT, hello(server.url.clone())).await??;
    // Alice's message is stored where the example says it went.
    let rest = Rest::new(&server.url);
    let session = rest.login("+15550000002", "correct horse").await?;
    let chats = rest.with_token(&session.token).chats().await?;
    let last = chats[0].last_message.as_ref().context("a message")?;
    ensure!(matches!(&last.content, Content::Text { body } if body == "hi Bob!"));
    Ok(())
}
