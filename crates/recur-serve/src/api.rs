//! The wire types of the service and its one error type. Request bodies
//! are parsed here, by hand rather than by axum's `Json`, so that every
//! refusal is JSON naming the field (`messages[2]`, `context_vectors[1][7]`)
//! with the status a client can act on: 400 for text that is not JSON,
//! 413 for a body over the limit, 422 for JSON that says the wrong thing
//! (NaN and Infinity included, which Python's `json.dumps` writes but JSON
//! does not allow), 503 for an overloaded or not yet ready service.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An error answered to the client as `{"error": message, "code": code}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The error code of a response, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl ApiError {
    /// An error answer: its status, a stable code and a message for the user.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 422: well-formed JSON that asks for something wrong.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        // A message quotes the client's input (an unknown key); a key of
        // 250 KB made an answer of 500 KB.
        const MAX: usize = 1000;
        let mut m: String = message.into();
        if m.len() > MAX {
            let cut = (0..=MAX)
                .rev()
                .find(|&i| m.is_char_boundary(i))
                .unwrap_or(0);
            let left = m.len() - cut;
            m.truncate(cut);
            m += &format!("... ({left} more bytes)");
        }
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, m)
    }

    /// 503: the service cannot answer now; the client may retry.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500: a failure inside recur, never the client's input.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "code": self.code});
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r.extensions_mut().insert(ErrorCode(self.code));
        r
    }
}

/// Parses a request body, naming the field that is wrong.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // A UTF-8 byte order mark, which some Windows tools write before JSON,
    // is ignored as RFC 8259 (section 8.1) lets a parser ignore it; it was
    // "expected value at line 1 column 1".
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request has no body; send a JSON object",
        ));
    }
    // serde would also read a struct from an array of its fields in
    // order (`[["hi"], null, null, null]` was a chat request); every
    // request body is an object.
    // Nor is any other JSON value one (serde's message named recur's Rust
    // types: "expected struct ChatRequest").
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
            let kind = match v {
                serde_json::Value::Array(_) => "a JSON array",
                serde_json::Value::String(_) => "a JSON string",
                serde_json::Value::Number(_) => "a JSON number",
                serde_json::Value::Bool(_) => "a JSON boolean",
                serde_json::Value::Null => "JSON null",
                serde_json::Value::Object(_) => "a JSON object",
            };
            return Err(ApiError::invalid(
                "invalid_field",
                format!("the body is {kind}; send a JSON object of named fields"),
            ));
        }
    }
    // A key given twice in any object (a feature of a classify row, say)
    // would silently take its last value; serde_json's maps keep the last.
    let once = &mut serde_json::Deserializer::from_slice(body);
    if let Err(e) = serde_path_to_error::deserialize::<_, KeysOnce>(&mut *once) {
        let inner = e.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("{}: {}; give each key once", e.path(), inner),
                ));
            }
            // Not JSON at all (`[1`, or nested past serde_json's limit) is
            // 400, before the typed parse names a field of it as 422.
            // NaN and numbers past float64 are left to that parse, which
            // names where they are.
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
                if non_finite_at(body, inner.line(), inner.column()).is_none()
                    && !inner.to_string().starts_with("number out of range") =>
            {
                let msg = if inner.to_string().starts_with("recursion limit exceeded") {
                    "the body nests arrays or objects more than 128 deep; a request needs a few"
                        .to_string()
                } else {
                    format!("the body is not valid JSON: {inner}")
                };
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", msg));
            }
            _ => {}
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut *de) {
        // Anything after the value but white space is not one JSON body.
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not one JSON value: {e}"),
            )),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if let Some(tok) = non_finite_at(body, inner.line(), inner.column()) {
                return Err(ApiError::invalid(
                    "non_finite",
                    format!("{path} holds {tok}; every number must be finite (JSON has no NaN or Infinity)"),
                ));
            }
            if inner.to_string().starts_with("number out of range") {
                return Err(ApiError::invalid(
                    "non_finite",
                    format!(
                        "{path} holds a number beyond float64 (line {}, column {}); every number must be finite",
                        inner.line(),
                        inner.column()
                    ),
                ));
            }
            match inner.classify() {
                serde_json::error::Category::Data => Err(ApiError::invalid(
                    "invalid_field",
                    recur_core::config_file::plain_types(&if path == "." {
                        inner.to_string()
                    } else {
                        format!("{path}: {inner}")
                    }),
                )),
                _ => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("the body is not valid JSON: {inner}"),
                )),
            }
        }
    }
}

/// Any JSON value, read only to refuse an object that names a key twice
/// (the one error it raises; everything else is left to the real parse).
struct KeysOnce;

impl<'de> Deserialize<'de> for KeysOnce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeysOnce)
    }
}

impl<'de> serde::de::Visitor<'de> for KeysOnce {
    type Value = KeysOnce;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<KeysOnce, E> {
        Ok(KeysOnce)
    }
    fn visit_i64<E>(self, _: i64) -> Result<KeysOnce, E> {
        Ok(KeysOnce)
    }
    fn visit_u64<E>(self, _: u64) -> Result<KeysOnce, E> {
        Ok(KeysOnce)
    }
    fn visit_f64<E>(self, _: f64) -> Result<KeysOnce, E> {
        Ok(KeysOnce)
    }
    fn visit_str<E>(self, _: &str) -> Result<KeysOnce, E> {
        Ok(KeysOnce)
    }
    fn visit_unit<E>(self) -> Result<KeysOnce, E> {
        Ok(KeysOnce)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<KeysOnce, A::Error> {
        while s.next_element::<KeysOnce>()?.is_some() {}
        Ok(KeysOnce)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<KeysOnce, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = m.next_key::<String>()? {
            if seen.contains(&k) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{k}` is given twice"
                )));
            }
            m.next_value::<KeysOnce>()?;
            seen.insert(k);
        }
        Ok(KeysOnce)
    }
}

/// `NaN`, `Infinity` or `-Infinity` where the parser stopped, if that is
/// why it stopped.
fn non_finite_at(body: &[u8], line: usize, column: usize) -> Option<&'static str> {
    if line == 0 {
        return None;
    }
    let start: usize = body
        .split(|&b| b == b'\n')
        .take(line - 1)
        .map(|l| l.len() + 1)
        .sum();
    let at = start + column.saturating_sub(1);
    (at.saturating_sub(1)..=at).find_map(|o| {
        let rest = body.get(o..)?;
        ["NaN", "-Infinity", "Infinity"]
            .into_iter()
            .find(|t| rest.starts_with(t.as_bytes()))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub messages: Option<Vec<String>>,
    pub paragraph: Option<String>,
    pub model: Option<String>,
    pub top_k: Option<usize>,
    /// Whether the answer and neighbours leave out the request's own
    /// sentences (else `decoder.exclude_context`).
    pub exclude_context: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyBreakdown {
    pub encoding_ms: f64,
    pub context_build_ms: f64,
    pub lvm_inference_ms: f64,
    pub decoding_ms: f64,
    /// Time waiting for the models before this request's batch ran.
    pub queue_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeighbourOut {
    pub text: String,
    pub cosine: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatResponse {
    pub response: String,
    pub confidence: f32,
    pub total_latency_ms: f64,
    pub latency_breakdown: LatencyBreakdown,
    /// `full` (exactly C sentences), `padded` (fewer: the earliest
    /// repeated in front) or `truncated` (more: the last C kept).
    pub ctx_fill_mode: String,
    pub neighbours: Vec<NeighbourOut>,
    pub model: String,
    /// Sentences the request gave, before padding or cutting.
    pub sentences: usize,
    /// Requests run through the models together with this one.
    pub batch_size: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    pub context_vectors: Vec<Vec<f64>>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InferResponse {
    pub predicted_vector: Vec<f32>,
    pub model: String,
    pub ctx_fill_mode: String,
    pub lvm_inference_ms: f64,
    pub total_latency_ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// One window: a list of rows, oldest first, or `{"id": ..., "rows": [...]}`.
    pub window: Option<serde_json::Value>,
    /// Several windows, each as `window`.
    pub windows: Option<Vec<serde_json::Value>>,
    /// One whole series (a model of the sequences layout): a list of
    /// steps, each a list of one value per channel (`null`: missing), or
    /// `{"id": ..., "steps": [...]}`.
    pub sequence: Option<serde_json::Value>,
    /// Several whole series, each as `sequence`.
    pub sequences: Option<Vec<serde_json::Value>>,
}

/// What the models say about one window's last row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifyResult {
    /// The window's `id`, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    /// The time column's value in the window's last row, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<serde_json::Value>,
    pub p_lstm: Option<f64>,
    pub p_trees: Option<f64>,
    pub p_ensemble: Option<f64>,
    /// The calibrated probability of the deployed model.
    pub probability: Option<f64>,
    /// 1 when `probability >= threshold`.
    pub decision: Option<u8>,
    /// Each class's calibrated probability, in the order of `classes`
    /// (more than two classes; `probability` is then the largest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_probabilities: Option<Vec<f64>>,
    /// The most probable class (more than two classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifyResponse {
    /// One per window (or series), in request order.
    pub results: Vec<ClassifyResult>,
    /// `rows` (windows were scored) or `sequences` (whole series).
    #[serde(default)]
    pub layout: recur_core::config::Layout,
    /// The classes, in the order of `class_probabilities` (more than two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// `probability` per window, in request order.
    pub probabilities: Vec<Option<f64>>,
    /// The model `probability` comes from (`ensemble` or `lstm`).
    pub deployed: String,
    /// The saved threshold `decision` uses.
    pub threshold: f64,
    pub features: Vec<String>,
    pub sequence_length: usize,
    /// The fewest rows a window must send.
    pub min_rows: usize,
    /// Columns the rows sent that the model does not read (ignored).
    pub ignored_columns: Vec<String>,
    pub inference_ms: f64,
    pub total_latency_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinity_are_named_with_their_field() {
        let e = parse::<InferRequest>(br#"{"context_vectors": [[0.1, NaN]]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.code, "non_finite");
        assert!(e.message.contains("NaN"), "{}", e.message);
        let e = parse::<InferRequest>(b"{\"context_vectors\":\n [[-Infinity]]}").unwrap_err();
        assert_eq!(e.code, "non_finite", "{}", e.message);
        assert!(e.message.contains("-Infinity"), "{}", e.message);
        // A number beyond float64 is named with its field too.
        let e = parse::<InferRequest>(br#"{"context_vectors": [[0.1, 1e400]]}"#).unwrap_err();
        assert_eq!(e.code, "non_finite", "{}", e.message);
        assert!(e.message.contains("context_vectors[0]"), "{}", e.message);
    }

    #[test]
    fn a_body_that_is_not_an_object_says_what_it_is() {
        for (body, kind) in [
            (&b"null"[..], "the body is JSON null;"),
            (b" \"hi\"", "the body is a JSON string;"),
            (b"5", "the body is a JSON number;"),
            (b"true", "the body is a JSON boolean;"),
            (b"[1, 2]", "the body is a JSON array;"),
        ] {
            let e = parse::<ChatRequest>(body).unwrap_err();
            assert_eq!(e.code, "invalid_field");
            assert!(
                e.message.contains(kind) && !e.message.contains("ChatRequest"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn wrong_types_name_the_path_and_broken_json_is_400() {
        let e = parse::<InferRequest>(br#"{"context_vectors": [[0.1, "x"]]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("context_vectors[0][1]"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"messages": ["a"], "colour": 1}"#).unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"messages": ["#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        for tail in [
            &br#"{"messages": ["hi"]} trailing garbage"#[..],
            br#"{"messages": ["a"]}{"messages": ["b"]}"#,
        ] {
            let e = parse::<ChatRequest>(tail).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_json")
            );
        }
        assert!(parse::<ChatRequest>(b"{\"messages\": [\"hi\"]}\n  ").is_ok());
        // Not JSON, though its start parses as a field: 400, not 422.
        for body in [&b"[1"[..], br#"{"messages":[["#] {
            let e = parse::<ChatRequest>(body).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_json"),
                "{}",
                e.message
            );
        }
        let deep = "[".repeat(200_000);
        let e = parse::<ChatRequest>(deep.as_bytes()).unwrap_err();
        assert!(
            e.code == "invalid_json" && e.message.contains("128 deep"),
            "{}",
            e.message
        );
        // An unknown key of 250 KB is not echoed whole.
        let long = format!("{{\"{}\": 1}}", "k".repeat(250_000));
        let e = parse::<ChatRequest>(long.as_bytes()).unwrap_err();
        assert!(
            e.code == "invalid_field" && e.message.len() < 1100,
            "{}",
            e.message.len()
        );
        assert_eq!(parse::<ChatRequest>(b"  ").unwrap_err().code, "empty_body");
        // A key given twice, at any depth, names the key and where it is.
        let e = parse::<ChatRequest>(br#"{"messages": ["a"], "x": {"k": 1, "k": 2}}"#).unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert!(
            e.message.contains("`k` is given twice") && e.message.contains("x"),
            "{}",
            e.message
        );
        let e = parse::<ChatRequest>(br#"{"messages": ["a"], "messages": ["b"]}"#).unwrap_err();
        assert!(
            e.message.contains("`messages` is given twice"),
            "{}",
            e.message
        );
        // Fields by position are not a request.
        for array in [&br#" [["hi"], null, null, null]"#[..], b"[]"] {
            let e = parse::<ChatRequest>(array).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
            );
            assert!(e.message.contains("JSON object"), "{}", e.message);
        }
    }
}
