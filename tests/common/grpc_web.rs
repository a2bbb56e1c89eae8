//! gRPC-web as a browser's `fetch` sends it, framed by hand over plain HTTP/1.1 (reqwest): a
//! `application/grpc-web+proto` POST whose body is one length-prefixed message, and an answer of
//! data frames followed by a trailer frame (or a trailers-only answer with `grpc-status` among
//! the headers).

use reqwest::header::HeaderMap;

/// The request and answer content type.
pub const CONTENT_TYPE: &str = "application/grpc-web+proto";

/// gRPC status codes used by the tests.
pub const OK: i32 = 0;
pub const NOT_FOUND: i32 = 5;
pub const PERMISSION_DENIED: i32 = 7;
pub const FAILED_PRECONDITION: i32 = 9;
pub const UNIMPLEMENTED: i32 = 12;

/// One message as a gRPC(-web) data frame: flag 0 (uncompressed), big-endian length, bytes.
pub fn frame(message: &impl prost::Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = Vec::with_capacity(bytes.len() + 5);
    out.push(0);
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// A gRPC-web answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub http: u16,
    pub headers: HeaderMap,
    /// `grpc-status` from the trailer frame or the headers; `None` when the answer has neither
    /// (not a gRPC-web answer at all).
    pub status: Option<i32>,
    /// `grpc-message`, percent-decoded.
    pub message: String,
    /// The data frames' payloads.
    pub messages: Vec<Vec<u8>>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The one message of a successful answer.
    #[track_caller]
    pub fn ok<M: prost::Message + Default>(&self) -> M {
        assert_eq!(self.status, Some(OK), "expected grpc-status 0: {self:?}");
        assert_eq!(self.messages.len(), 1, "{self:?}");
        M::decode(self.messages[0].as_slice()).unwrap()
    }

    /// Asserts a gRPC error status with no message in the answer.
    #[track_caller]
    pub fn assert_status(&self, code: i32) {
        assert_eq!(self.http, 200, "gRPC-web answers errors with HTTP 200: {self:?}");
        assert_eq!(self.status, Some(code), "{self:?}");
        assert!(self.messages.is_empty(), "an error answer carries a message: {self:?}");
    }
}

/// `grpc-message` values are percent-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses an answer's frames.
pub fn parse(http: u16, headers: HeaderMap, body: &[u8]) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut status = header("grpc-status").and_then(|s| s.parse().ok());
    let mut message = header("grpc-message").map(|m| percent_decode(&m)).unwrap_or_default();
    let mut messages = Vec::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        assert!(rest.len() >= 5 + len, "a truncated gRPC-web frame: {body:?}");
        let payload = &rest[5..5 + len];
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(payload).split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "grpc-status" => status = v.trim().parse().ok(),
                        "grpc-message" => message = percent_decode(v.trim()),
                        _ => {}
                    }
                }
            }
        } else {
            messages.push(payload.to_vec());
        }
        rest = &rest[5 + len..];
    }
    Answer { http, headers, status, message, messages }
}

/// Sends `message` as a gRPC-web call with the request `req` (URL and extra headers set).
pub async fn call(req: reqwest::RequestBuilder, message: &impl prost::Message) -> Answer {
    let r = req
        .header("content-type", CONTENT_TYPE)
        .header("accept", CONTENT_TYPE)
        .header("x-grpc-web", "1")
        .body(frame(message))
        .send()
        .await
        .unwrap();
    let http = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    parse(http, headers, &body)
}
