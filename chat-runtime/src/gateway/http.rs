//! What every REST and media handler shares: the refusal ([`Failure`], the
//! API's typed error body), the authenticated user ([`Authed`]), and JSON
//! bodies, queries and path ids that refuse bad input with the API's own
//! errors rather than the framework's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bodies;
use crate::auth::Claims;
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::node::Node;
use crate::protocol::ErrorCode;
use crate::protocol::rest::ErrorBody;

/// Largest JSON body accepted by the REST API.
pub const MAX_BODY: usize = 64 * 1024;

/// What a handler answers.
pub type Answer = Result<Response, Failure>;

/// An [`ApiError`] as an HTTP response: its status, the JSON error body and,
/// when the client should wait, `Retry-After`. The response carries the
/// code as an extension, so the gateway counts every refusal in one place.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl<E: Into<ApiError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = self.0;
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            code: e.code,
            message: e.message.clone(),
            retry_after_ms: e.retry_after_ms,
        };
        let mut response = json(status, &body);
        if let Some(ms) = e.retry_after_ms {
            // Whole seconds, rounded up: never earlier than the server said.
            let secs = ms.div_ceil(1000).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response.extensions_mut().insert(e.code);
        response
    }
}

/// `body` as a JSON response with `status`.
fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("views serialize");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 200 with `body`.
pub fn ok<T: Serialize>(body: &T) -> Answer {
    Ok(json(StatusCode::OK, body))
}

/// 201 with `body`.
pub fn created<T: Serialize>(body: &T) -> Answer {
    Ok(json(StatusCode::CREATED, body))
}

/// 204, nothing to say.
pub fn done() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An unknown endpoint, or a method an endpoint does not take.
pub fn not_found(message: &'static str) -> Failure {
    Failure(ApiError::new(ErrorCode::NotFound, message))
}

/// The client a request is counted under (see [`ClientAddr`]); the server
/// puts it on every request it accepts.
pub struct Peer(pub ClientAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        let client = parts.extensions.get::<ClientAddr>().copied();
        Ok(Self(client.unwrap_or(ClientAddr::UNKNOWN)))
    }
}

/// The signed-in user behind `Authorization: Bearer`, charged for the
/// request: each costs what one WebSocket frame does, so switching to REST
/// buys no extra rate (429 `rate_limited` over it).
pub struct Authed(pub Claims);

impl FromRequestParts<Arc<Node>> for Authed {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, Failure> {
        let claims = bearer(node, parts).await?;
        node.check_rate(claims.sub)?;
        Ok(Self(claims))
    }
}

/// The claims of the request's bearer token, not charged for.
pub async fn bearer(node: &Node, parts: &Parts) -> Result<Claims, Failure> {
    let value = parts.headers.get(header::AUTHORIZATION);
    let value = value.and_then(|v| v.to_str().ok());
    Ok(node.authenticate_header(value).await?)
}

/// A JSON body of at most [`MAX_BODY`] bytes, decoded as
/// [`bodies::decode`] does: 413 `too_large` over the limit, 400 `invalid`
/// for anything that is not the body's shape.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, _: &S) -> Result<Self, Failure> {
        let declared = req.headers().get(header::CONTENT_TYPE);
        let is_json = declared.is_none_or(|v| {
            v.to_str().is_ok_and(|v| {
                let essence = v.split(';').next().unwrap_or_default().trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            })
        });
        if !is_json {
            return Err(Failure(ApiError::invalid(
                "send a JSON body with Content-Type: application/json",
            )));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                let over = e
                    .into_inner()
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                if over {
                    ApiError::new(
                        ErrorCode::TooLarge,
                        format!("bodies are limited to {MAX_BODY} bytes"),
                    )
                } else {
                    ApiError::invalid("the body could not be read")
                }
            })?;
        Ok(Self(bodies::json(&bytes)?))
    }
}

/// A URL query, decoded as [`bodies::decode`] does.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(bodies::query(query.as_bytes())?))
    }
}

/// The ids in a route's path; one that does not parse names no resource
/// (404 `not_found`, as an unknown path).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(ids)) => Ok(Self(ids)),
            Err(_) => Err(not_found("no such endpoint")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_with_a_retry_time_carries_retry_after_in_whole_seconds() {
        let mut e = ApiError::new(ErrorCode::Unavailable, "busy");
        e.retry_after_ms = Some(1_200);
        let response = Failure(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(
            response.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::Unavailable)
        );
        let plain = Failure(ApiError::invalid("no")).into_response();
        assert!(plain.headers().get("retry-after").is_none());
    }
}
