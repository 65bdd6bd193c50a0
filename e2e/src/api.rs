//! A REST client of one gateway (or standalone server), for scenarios:
//! accounts, chats, and raw calls with a status to check.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use uuid::Uuid;

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub phone: String,
    pub token: String,
}

/// Calls to the server at `url` (`http://host:port`).
#[derive(Clone, Debug)]
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends `req`; its status and JSON body (`null` when there is none).
    pub async fn json(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Result<(u16, Value)> {
        let req = self.http.post(format!("{}{path}", self.url));
        self.json(req.bearer_auth(token).json(&body)).await
    }

    pub async fn user(&self, name: &str) -> Result<User> {
        let phone = format!("+1{:010}", Uuid::new_v4().as_u128() % 10_000_000_000);
        let creds = json!({"phone": phone, "display_name": name, "password": "s3cret-pass"});
        let (s, b) = self
            .json(
                self.http
                    .post(format!("{}/v1/register", self.url))
                    .json(&creds),
            )
            .await?;
        ensure!(s == 201, "register: {s} {b}");
        let login = json!({"phone": phone, "password": "s3cret-pass"});
        let (s, b) = self
            .json(
                self.http
                    .post(format!("{}/v1/login", self.url))
                    .json(&login),
            )
            .await?;
        ensure!(s == 200, "login: {s} {b}");
        Ok(User {
            id: b["user_id"].as_str().context("user_id")?.parse()?,
            phone,
            token: b["token"].as_str().context("token")?.to_owned(),
        })
    }

    pub async fn direct(&self, a: &User, b: &User) -> Result<Uuid> {
        let (s, body) = self
            .post("/v1/direct", &a.token, json!({"phone": b.phone}))
            .await?;
        // 201 when this call created it, 200 when it was there.
        ensure!(s == 200 || s == 201, "direct: {s} {body}");
        Ok(body["chat_id"].as_str().context("chat_id")?.parse()?)
    }

    pub async fn group(&self, owner: &User, title: &str, members: &[&User]) -> Result<Uuid> {
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        let body = json!({"title": title, "members": ids});
        let (s, b) = self.post("/v1/groups", &owner.token, body).await?;
        ensure!(s == 201, "group: {s} {b}");
        Ok(b["chat_id"].as_str().context("chat_id")?.parse()?)
    }

    /// `GET path` with an optional token and extra headers.
    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response> {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Ok(req.send().await?)
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Result<(u16, Value)> {
        let req = self.http.put(format!("{}{path}", self.url));
        self.json(req.bearer_auth(token).json(&body)).await
    }

    /// `DELETE path`; the status.
    pub async fn delete(&self, path: &str, token: &str) -> Result<u16> {
        let req = self.http.delete(format!("{}{path}", self.url));
        Ok(req.bearer_auth(token).send().await?.status().as_u16())
    }

    /// Sends a text message through REST; its seq.
    pub async fn say(&self, u: &User, chat: Uuid, body: &str) -> Result<u64> {
        let msg = json!({"client_msg_id": Uuid::new_v4().to_string(), "body": body});
        let (s, b) = self
            .post(&format!("/v1/chats/{chat}/messages"), &u.token, msg)
            .await?;
        ensure!(s == 201, "send: {s} {b}");
        b["seq"].as_u64().context("seq")
    }
}
