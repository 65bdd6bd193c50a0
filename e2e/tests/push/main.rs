//! Push-notification scenarios on a standalone server: webhook pushes, and
//! FCM and APNs through their stand-ins. The same scenarios run on a local cluster in the services suite.

use anyhow::Result;
use confab_api::config::PushConfig;
use confab_e2e::media::App;
use confab_e2e::push::{self, Target};
use confab_e2e::push_services::PushServices;

async fn standalone() -> Result<(App, Target, tempfile::TempDir)> {
    standalone_with(PushConfig {
        webhooks: true,
        allow_http_webhooks: true,
        ..PushConfig::default()
    })
    .await
}

async fn standalone_with(push: PushConfig) -> Result<(App, Target, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let app = App::serve(chat_runtime::standalone::Config {
        push,
        ..chat_runtime::standalone::Config::new(dir.path().to_path_buf())
    })
    .await?;
    let target = Target {
        gateways: vec![(*app).clone()],
        notifier_metrics: format!("{}/metrics", app.url),
    };
    Ok((app, target, dir))
}

#[tokio::test]
async fn offline_members_get_pushes() -> Result<()> {
    let (app, t, _dir) = standalone().await?;
    push::offline_members_get_pushes(&t).await?;
    app.stop().await;
    Ok(())
}

#[tokio::test]
async fn failures_are_retried_forgotten_or_dead_lettered() -> Result<()> {
    let (app, t, _dir) = standalone().await?;
    push::failures_are_retried_forgotten_or_dead_lettered(&t).await?;
    app.stop().await;
    Ok(())
}

#[tokio::test]
async fn device_registration_refuses_bad_input() -> Result<()> {
    let (app, t, _dir) = standalone().await?;
    push::device_registration_refuses_bad_input(&t).await?;
    app.stop().await;
    Ok(())
}

#[tokio::test]
async fn fcm_and_apns_deliver_and_forget_gone_tokens() -> Result<()> {
    let services = PushServices::start().await?;
    let (app, t, _dir) = standalone_with(services.push_config()).await?;
    push::fcm_and_apns_deliver_and_forget_gone_tokens(&t, &services).await?;
    app.stop().await;
    Ok(())
}
