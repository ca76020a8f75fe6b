//! Errors: [`ApiError`], what a client gets (OpenAI's JSON error shape and a status code), and
//! [`Error`], what stops the server from starting.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Settings(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An error answer: `{"error": {"message", "type", "param", "code"}}` with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), kind, param: None, code: None }
    }

    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// 400 without a field to name (e.g. a body that is not JSON).
    pub fn bad_body(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn with_code(mut self, code: &str) -> ApiError {
        self.code = Some(code.to_string());
        self
    }

    pub fn unauthorized() -> ApiError {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
        )
        .with_code("invalid_api_key")
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    pub fn model_not_found(asked: &str, served: &str) -> ApiError {
        ApiError {
            param: Some("model".into()),
            ..Self::not_found(format!("the model '{asked}' does not exist here; this server serves '{served}'"))
        }
        .with_code("model_not_found")
    }

    pub fn method_not_allowed() -> ApiError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method not allowed on this path")
    }

    pub fn too_large(limit: usize) -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", format!("the body is over {limit} bytes"))
    }

    pub fn unsupported_media_type() -> ApiError {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "send the body as JSON with 'Content-Type: application/json'",
        )
    }

    pub fn body_timeout() -> ApiError {
        Self::new(StatusCode::REQUEST_TIMEOUT, "invalid_request_error", "the body did not arrive in time")
    }

    /// 503: every queue slot is taken; the client may retry.
    pub fn overloaded(queue: usize) -> ApiError {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_overloaded",
            format!("the server is at capacity ({queue} requests waiting); retry in a moment"),
        )
        .with_code("queue_full")
    }

    /// 503: as many requests are in flight as the server takes.
    pub fn overloaded_connections(limit: usize) -> ApiError {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_overloaded",
            format!("the server is handling {limit} requests, as many as it takes; retry in a moment"),
        )
        .with_code("too_many_requests")
    }

    pub fn shutting_down() -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "the server is shutting down")
    }

    pub fn timeout(secs: u64) -> ApiError {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", format!("no complete answer within {secs} s (--timeout)"))
    }

    /// 500: the model failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// 502: the `--backend` engine failed or answered something unusable.
    pub fn backend(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_GATEWAY, "backend_error", message)
    }

    /// The JSON body alone (streams send it as their last event).
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.json())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}
