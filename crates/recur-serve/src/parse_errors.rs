//! JSON bodies for the errors hyper answers by itself.
//!
//! A request hyper cannot parse (400), whose URI is too long (414) or
//! whose headers are too large (431) is answered inside hyper, before any
//! router sees it, with an empty body; hyper has no hook to change that.
//! So that every error recur sends is JSON, the connection's writer is
//! wrapped: a response head of one of those statuses with
//! `content-length: 0` (which no handler of recur writes: every error of
//! the service carries a JSON body) is replaced, as it is written, by the
//! same head with a JSON body. The wrapper does not offer vectored
//! writes, so hyper hands it each response head whole, in one buffer.
//! Each one rewritten is counted in `recur_errors_total` under the
//! endpoint `http`, as the router counts its own errors.
//!
//! hyper closes a connection that opens with HTTP/2's preface (prior
//! knowledge) without a word, so such a client saw a closed socket and no
//! error was counted. The preface's method is changed as it is read, so
//! hyper answers it as the bad HTTP/1.1 request it is, and the answer says
//! that recur serves HTTP/1.1.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose HTTP-layer errors get JSON bodies.
pub struct JsonParseErrors<S> {
    inner: S,
    pending: Option<Rewritten>,
    /// Whether the connection's first bytes have been read.
    read_any: bool,
    /// Whether they were HTTP/2's preface.
    h2: bool,
    /// `recur_errors_total`, by endpoint and code.
    errors: prometheus::IntCounterVec,
}

/// A replacement being written: its bytes, how many are out, and how
/// many bytes of hyper's buffer it stands for.
struct Rewritten {
    bytes: Vec<u8>,
    written: usize,
    replaces: usize,
}

impl<S> JsonParseErrors<S> {
    /// Wraps a connection's I/O `inner`; each error rewritten is counted
    /// in `errors`.
    pub fn new(inner: S, errors: prometheus::IntCounterVec) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
            read_any: false,
            h2: false,
            errors,
        }
    }
}

/// The code and message of an automatic response's status.
fn explain(status: &str) -> Option<(&'static str, &'static str)> {
    Some(match status {
        "400" => (
            "bad_http",
            "the request is not valid HTTP/1.1: its request line or a header could not be parsed",
        ),
        "414" => (
            "uri_too_long",
            "the request's URI is too long; send parameters in a JSON body",
        ),
        "431" => (
            "headers_too_large",
            "the request's headers are too large or too many (at most 100 lines), or its \
             Content-Length is beyond any body a server reads; send data in the body, within \
             limits.max_body_bytes (GET /info)",
        ),
        _ => return None,
    })
}

/// If `buf` starts with an automatic error head of hyper, the JSON
/// response to send instead, the length of the head it replaces and the
/// error's code.
fn rewrite(buf: &[u8], h2: bool) -> Option<(Vec<u8>, usize, &'static str)> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let (code, mut message) = explain(std::str::from_utf8(rest.get(..3)?).ok()?)?;
    if h2 && code == "bad_http" {
        message =
            "recur serves HTTP/1.1; HTTP/2 with prior knowledge is not supported: send HTTP/1.1";
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let lower = head.to_ascii_lowercase();
    let at = lower.find("\r\ncontent-length: 0\r\n")?;
    let body = serde_json::json!({"error": message, "code": code}).to_string();
    let mut out = String::with_capacity(end + body.len() + 64);
    out.push_str(&head[..at]);
    out.push_str(&format!(
        "\r\ncontent-type: application/json\r\ncontent-length: {}",
        body.len()
    ));
    out.push_str(&head[at + "\r\ncontent-length: 0".len()..]);
    out.push_str(&body);
    Some((out.into_bytes(), end, code))
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.read_any && buf.filled().len() > before {
            self.read_any = true;
            let got = &mut buf.filled_mut()[before..];
            // PRI is reserved for the preface (RFC 9113), so its first
            // four bytes are enough (the rest may come in a later read).
            if got.starts_with(b"PRI ") {
                self.h2 = true;
                got[..3].copy_from_slice(b"H2?");
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf, this.h2) {
                Some((bytes, replaces, code)) => {
                    this.errors.with_label_values(&["http", code]).inc();
                    this.pending = Some(Rewritten {
                        bytes,
                        written: 0,
                        replaces,
                    })
                }
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let p = this.pending.as_mut().expect("set above");
        while p.written < p.bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &p.bytes[p.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(n)) => p.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let replaces = p.replaces;
        this.pending = None;
        Poll::Ready(Ok(replaces))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn an_empty_automatic_error_gets_a_json_body_and_the_rest_is_untouched() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (out, replaces, code) = rewrite(head, false).unwrap();
        assert_eq!(code, "headers_too_large");
        assert_eq!(replaces, head.len());
        let out = String::from_utf8(out).unwrap();
        let (h, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(h.contains("content-type: application/json"), "{h}");
        assert!(
            h.contains(&format!("content-length: {}", body.len())),
            "{h}"
        );
        assert!(h.contains("date: x"), "{h}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "headers_too_large");
        // Responses of the service itself pass as they are.
        assert!(rewrite(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 31\r\n\r\n{}",
            false
        )
        .is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false).is_none());
        assert!(rewrite(b"{\"x\": 1}", false).is_none());
    }
}
