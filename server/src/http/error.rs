//! API errors: every refusal is a JSON body `{"error": {"status", "code",
//! "message"}}` with the right status, never a bare 500 or a panic.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

/// A response body.
pub type Body = Full<Bytes>;

/// Declares [`Code`] from one list: each code's name, spelling and status
/// written once, so the server cannot send a code that is not in the list
/// (`ALL`), which a test compares with docs/api.md's table.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $status:ident $name:literal,)*) => {
        /// Every error code the API answers with, and its one status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the order of docs/api.md's table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the error body spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

codes! {
    /// A parameter or body is wrong.
    BadRequest = BAD_REQUEST "bad_request",
    /// `repo` names a repository not served, or not visible to the token.
    UnknownRepository = BAD_REQUEST "unknown_repository",
    /// A file path that is not repository-relative.
    BadPath = BAD_REQUEST "bad_path",
    /// A path of several repositories, none named.
    AmbiguousPath = BAD_REQUEST "ambiguous_path",
    /// A line range the file does not have.
    BadRange = BAD_REQUEST "bad_range",
    /// A grep pattern that is empty, too long or does not compile.
    BadPattern = BAD_REQUEST "bad_pattern",
    /// A missing or wrong token.
    Unauthorized = UNAUTHORIZED "unauthorized",
    /// The admin API without an admin token configured.
    AdminDisabled = FORBIDDEN "admin_disabled",
    /// `/metrics` with a scoped token.
    Forbidden = FORBIDDEN "forbidden",
    /// `POST /mcp` from a refused `Origin`.
    ForbiddenOrigin = FORBIDDEN "forbidden_origin",
    /// No such endpoint.
    NotFound = NOT_FOUND "not_found",
    /// No indexed file has the path.
    NoSuchFile = NOT_FOUND "no_such_file",
    /// The bundle predates file texts.
    NoFileTexts = NOT_FOUND "no_file_texts",
    /// The wrong method.
    MethodNotAllowed = METHOD_NOT_ALLOWED "method_not_allowed",
    /// The body did not arrive in time.
    BodyTimeout = REQUEST_TIMEOUT "body_timeout",
    /// A reload on a server that follows nothing.
    NothingToFollow = CONFLICT "nothing_to_follow",
    /// A body over the limit.
    BodyTooLarge = PAYLOAD_TOO_LARGE "body_too_large",
    /// A query over the limit.
    QueryTooLong = PAYLOAD_TOO_LARGE "query_too_long",
    /// A body that is not JSON.
    UnsupportedMediaType = UNSUPPORTED_MEDIA_TYPE "unsupported_media_type",
    /// Over the per-client rate.
    RateLimited = TOO_MANY_REQUESTS "rate_limited",
    /// Nothing verified is live yet.
    NotReady = SERVICE_UNAVAILABLE "not_ready",
    /// Every query slot busy.
    Overloaded = SERVICE_UNAVAILABLE "overloaded",
    /// The request took too long.
    Timeout = SERVICE_UNAVAILABLE "timeout",
    /// A bug.
    Internal = INTERNAL_SERVER_ERROR "internal",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status (the code's).
    pub status: StatusCode,
    /// Stable machine-readable code (docs/api.md lists them).
    pub code: Code,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// Sent with 401 (`WWW-Authenticate`).
    pub challenge: bool,
    /// Sent with 405 (`Allow`).
    pub allow: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with `code` (and its status) and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            message: message.into(),
            retry_after: None,
            challenge: false,
            allow: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// `code` (a 503) with `Retry-After`.
    pub fn unavailable(code: Code, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(code, message)
        }
    }

    /// 500 `internal`: a bug or a broken bundle; the message says which.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// The response.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::to_vec(&ErrorBody {
            error: ErrorFields {
                status: self.status.as_u16(),
                code: self.code.as_str(),
                message: &self.message,
            },
        })
        .unwrap_or_default();
        let mut response = json_response(self.status, body);
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"shelf\""),
            );
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `value` as a JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, ApiError> {
    serde_json::to_vec(value)
        .map(|body| json_response(status, body))
        .map_err(|e| ApiError::internal(format!("encoding the response: {e}")))
}
