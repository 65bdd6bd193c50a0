//! A REST client of one gateway (or standalone server), for scenarios:
//! accounts, chats and sends through the Rust client's [`Rest`], and raw
//! calls with a status to check (for what a scenario sends on purpose
//! wrong).

use anyhow::Result;
use confab_client::Rest;
use serde_json::Value;
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

    /// The client's REST calls, as `user` (or anonymous).
    pub fn rest(&self, user: Option<&User>) -> Rest {
        let rest = Rest::new(&self.url);
        match user {
            Some(u) => rest.with_token(&u.token),
            None => rest,
        }
    }

    pub async fn user(&self, name: &str) -> Result<User> {
        let phone = format!("+1{:010}", Uuid::new_v4().as_u128() % 10_000_000_000);
        let rest = self.rest(None);
        rest.register(&phone, name, "s3cret-pass").await?;
        let session = rest.login(&phone, "s3cret-pass").await?;
        Ok(User {
            id: session.user_id,
            phone,
            token: session.token,
        })
    }

    pub async fn direct(&self, a: &User, b: &User) -> Result<Uuid> {
        Ok(self.rest(Some(a)).direct(&b.phone).await?.chat_id)
    }

    pub async fn group(&self, owner: &User, title: &str, members: &[&User]) -> Result<Uuid> {
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        Ok(self.rest(Some(owner)).group(title, &ids).await?.chat_id)
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
        let id = Uuid::new_v4().to_string();
        Ok(self.rest(Some(u)).send(chat, &id, body).await?.seq)
    }
}
