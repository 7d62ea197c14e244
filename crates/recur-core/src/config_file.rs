//! Reading recur's YAML config files, one way for all three: Job A's
//! `Config`, Job B's `LvmConfig` and the service's `ServeConfig`. The file
//! is read under a size limit, parsed with its name in every error (serde
//! names the key: unknown keys are refused, missing ones take the
//! section's `Default`), and each path it holds is made relative to the
//! file's folder, so a config works from any working directory. Each type
//! then checks its own ranges (its `validate`).

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The largest config file read (a config is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A config that holds file paths, relative to the config file.
pub trait ConfigPaths {
    /// Every path field, to be joined to the config file's folder.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf>;
}

/// The deepest nesting of `[` and `{` a config may hold: the parser's
/// time grows with the square of it (100,000 levels in 200 KB took 39 s),
/// and a config nests a few.
const MAX_FLOW_DEPTH: usize = 64;

/// How deep `text` nests flow collections (`[`, `{`), outside quoted
/// strings and comments. A quote opens a string only where a YAML scalar
/// can start (after `: `, `- `, `[`, `{`, `,` or at a line's start), so the
/// apostrophe of `note: it's` does not hide the brackets after it;
/// `\"` inside double quotes and `''` inside single ones are escapes.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut escaped = false;
    // The last character that is not a space, and the one just before.
    let (mut sig, mut prev) = ('\n', '\n');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if q == '\'' && c == '\'' && chars.peek() == Some(&'\'') {
                chars.next();
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' if matches!(sig, '\n' | ':' | '-' | '[' | '{' | ',' | '?') => {
                    quote = Some(c)
                }
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if c == '\n' || !c.is_whitespace() {
            sig = c;
        }
        prev = c;
    }
    max
}

/// Parses YAML `text`; `origin` names it in errors. Paths stay as written.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    // A UTF-8 byte order mark (Windows editors) read as a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let depth = flow_depth(text);
    if depth > MAX_FLOW_DEPTH {
        return Err(Error::config(
            origin,
            format!("nests [ and {{ {depth} levels deep; a config needs a few (at most {MAX_FLOW_DEPTH})"),
        ));
    }
    // A section heading left empty (`trees:` with its keys commented out)
    // read as null: an optional section was then off, a required one took
    // its defaults; either way not what the file seems to say. (`trees:
    // null`, as a model directory's config.yaml writes it, says off.)
    if let Ok(serde_yaml_ng::Value::Mapping(m)) = serde_yaml_ng::from_str(text) {
        let heading = |k: &str| {
            text.lines().any(|l| {
                let l = l.split(" #").next().unwrap_or(l).trim_end();
                l.strip_suffix(':') == Some(k)
            })
        };
        let empty = m
            .iter()
            .filter(|(_, v)| v.is_null())
            .filter_map(|(k, _)| k.as_str())
            .find(|k| heading(k));
        if let Some(k) = empty {
            return Err(Error::config(
                format!("{origin}: {k}"),
                format!(
                    "is an empty heading (its keys commented out?); give it a value (`{k}: {{}}` \
                     for a section's defaults), `{k}: null` for none, or leave the key out"
                ),
            ));
        }
    }
    serde_yaml_ng::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // The other job's config, named as such rather than by its key.
        let data = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
            .ok()
            .and_then(|v| v.get("data").cloned());
        let has = |k: &str| data.as_ref().is_some_and(|d| d.get(k).is_some());
        let hint = if msg.contains("unknown field `train`") && has("train") {
            "; this is a Job B (LVM) config: train it with `recur lvm train` (Python: `recur.Lvm.train`)"
        } else if msg.contains("unknown field `path`") && has("path") {
            "; this is a Job A (classifier) config: train it with `recur train`"
        } else if msg.contains("unknown field `data`") && msg.contains("`classifier`") {
            // A training config given to `recur serve`.
            if has("train") {
                "; this is a Job B (LVM) config, for `recur lvm train`: serve the model it trains \
                 with `models: [{name: NAME, path: DIR}]` in a serve config (see configs/serve.yaml)"
            } else {
                "; this is a training config, for `recur train`: serve the model it trains with \
                 `classifier: DIR` in a serve config (see configs/serve.yaml)"
            }
        } else {
            ""
        };
        Error::config(origin, format!("{}{hint}", plain_types(&msg)))
    })
}

/// serde's names of Rust types in a parse error, in the file's terms: a
/// user who wrote `hidden_size: -5` was told "expected usize", and a list
/// where a section belongs "expected struct DataConfig". (The service's
/// JSON errors use it too.)
pub fn plain_types(msg: &str) -> String {
    let mut m = msg.to_string();
    for (rust, plain) in [
        ("usize", "a whole number, not negative"),
        ("u64", "a whole number, not negative"),
        ("u32", "a whole number, not negative"),
        ("u16", "a whole number from 0 to 65535"),
        ("u8", "a whole number from 0 to 255"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        // Whole words only ("expected usize at line 3", "expected usize").
        m = m
            .replace(&format!("expected {rust} "), &format!("expected {plain} "))
            .replace(&format!("expected {rust},"), &format!("expected {plain},"));
        if m.ends_with(&format!("expected {rust}")) {
            m.truncate(m.len() - rust.len());
            m.push_str(plain);
        }
    }
    while let Some(at) = m.find("expected struct ") {
        let rest = &m[at + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let tail = rest[end..].to_string();
        m.truncate(at);
        m.push_str("expected a section of `key: value` settings");
        m.push_str(&tail);
    }
    m
}

/// The config in `path`, with its relative paths joined to the file's
/// folder, and the file's text (for checks that need to know which keys
/// the file itself wrote).
pub fn read<T: DeserializeOwned + ConfigPaths>(path: &Path) -> Result<(T, String)> {
    // A data file, weights or a table given where the config belongs was
    // told to "save it as UTF-8" or what YAML node it lacked: say what
    // a config is, where the name says the file is something else.
    let not_yaml = |e: Error| -> Error {
        // The reader's or parser's words without their own path.
        let inner = match &e {
            Error::Config { msg, .. } | Error::Data { msg, .. } => msg.clone(),
            other => other.to_string(),
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some(
                x @ ("csv" | "tsv" | "parquet" | "pq" | "npz" | "npy" | "safetensors" | "pt"
                | "pth" | "bin" | "jsonl" | "gz" | "zip" | "ts" | "arff"),
            ) => Error::config(
                path.display().to_string(),
                format!(
                    "is a .{x} file, not a config: a config is a YAML file of settings such as \
                     configs/rainfall.yaml or configs/lvm-text.yaml ({inner})"
                ),
            ),
            _ => e,
        }
    };
    let text = crate::fsx::read_text_bounded(path, MAX_CONFIG_BYTES).map_err(not_yaml)?;
    if text.trim_start_matches('\u{feff}').lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    }) {
        return Err(Error::config(
            path.display().to_string(),
            "is empty (or only comments): give the settings, as in the files of configs/",
        ));
    }
    let mut cfg: T = parse(&text, &path.display().to_string()).map_err(not_yaml)?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in cfg.paths_mut() {
        // An empty path stays empty, for validation to name (joined, it
        // read as the config's folder: "is a folder; give a file").
        if p.is_relative() && !p.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
    }
    Ok((cfg, text))
}

/// Makes the config's paths of files that exist absolute (symbolic links
/// and `..` resolved): for the copy a model directory keeps, whose
/// relative paths would be read against the directory, not against the
/// folder the training ran in. A path naming nothing is left as it is.
pub fn absolute_paths<T: ConfigPaths>(cfg: &mut T) {
    for p in cfg.paths_mut() {
        if p.is_relative() && !p.as_os_str().is_empty() {
            if let Ok(a) = std::fs::canonicalize(&*p) {
                *p = a;
            }
        }
    }
}

/// Which job a config file is for: Job B's LVM configs name their
/// training windows (`data.train`), Job A's configs a table (`data.path`).
/// Commands that take either (`recur tune`) dispatch on it; a file that is
/// not YAML reads as Job A's, whose parser then says what is wrong.
pub fn is_lvm_config(path: &Path) -> Result<bool> {
    // Bounded as [`read`] is: an 8 MB file of nested lists took 2 GB here
    // before the reader refused it.
    let text = crate::fsx::read_text_bounded(path, MAX_CONFIG_BYTES)?;
    let v: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(_) => return Ok(false),
    };
    Ok(v.get("data").and_then(|d| d.get("train")).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Two {
        a: PathBuf,
        b: Option<PathBuf>,
    }

    impl ConfigPaths for Two {
        fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
            std::iter::once(&mut self.a)
                .chain(self.b.as_mut())
                .collect()
        }
    }

    /// Rust's type names in serde's errors are said in the file's terms.
    #[test]
    fn parse_errors_name_types_as_a_config_writes_them() {
        assert_eq!(
            plain_types("model.hidden_size: invalid value: integer `-5`, expected usize at line 2 column 16"),
            "model.hidden_size: invalid value: integer `-5`, expected a whole number, not negative at line 2 column 16"
        );
        assert_eq!(
            plain_types("data: invalid type: sequence, expected struct DataConfig at line 1 column 7"),
            "data: invalid type: sequence, expected a section of `key: value` settings at line 1 column 7"
        );
        assert_eq!(plain_types("x: expected f64"), "x: expected a number");
        // Not inside other words.
        assert_eq!(plain_types("expected usizes"), "expected usizes");
    }

    #[test]
    fn relative_paths_follow_the_file_and_absolute_or_missing_ones_stay() {
        let dir = std::env::temp_dir().join(format!("recur-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.yaml");
        std::fs::write(&f, "a: data/x.npz\nb: /abs/y.npz\n").unwrap();
        let (c, text) = read::<Two>(&f).unwrap();
        assert_eq!(c.a, dir.join("data/x.npz"));
        assert_eq!(c.b, Some(PathBuf::from("/abs/y.npz")));
        assert!(text.contains("data/x.npz"));
        std::fs::write(&f, "b: y.npz\n").unwrap();
        let (c, _) = read::<Two>(&f).unwrap();
        assert_eq!(c.b, Some(dir.join("y.npz")));
        std::fs::write(&f, "c: 1\n").unwrap();
        let e = read::<Two>(&f).err().unwrap().to_string();
        assert!(e.contains("c.yaml") && e.contains("`c`"), "{e}");
        // An empty file is said to be one (its defaults were taken, and
        // the error named a missing key of no file).
        for empty in ["# nothing yet\n\n", "\u{feff}", "---\n"] {
            std::fs::write(&f, empty).unwrap();
            let e = read::<Two>(&f).err().unwrap().to_string();
            assert!(
                e.contains("c.yaml") && e.contains("is empty"),
                "{empty:?}: {e}"
            );
        }
        // A table given as the config is named as one.
        let t = dir.join("rows.csv");
        std::fs::write(&t, "a,b\n1,2\n").unwrap();
        let e = read::<Two>(&t).err().unwrap().to_string();
        assert!(e.contains("is a .csv file, not a config"), "{e}");
        assert_eq!(e.matches("rows.csv").count(), 1, "{e}");
        std::fs::remove_file(&t).unwrap();
        // A byte order mark is not a second document.
        std::fs::write(&f, "\u{feff}a: x.npz\n").unwrap();
        assert_eq!(read::<Two>(&f).unwrap().0.a, dir.join("x.npz"));
        // An empty heading is named; an explicit null is a value.
        std::fs::write(&f, "a: x.npz\nb:   # commented out\n#  c: 1\n").unwrap();
        let e = read::<Two>(&f).err().unwrap().to_string();
        assert!(e.contains(": b") && e.contains("empty heading"), "{e}");
        std::fs::write(&f, "a: x.npz\nb: null\n").unwrap();
        assert_eq!(read::<Two>(&f).unwrap().0.b, None);
        // Deep nesting is refused at once (its parse time grows with the
        // square of the depth).
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        std::fs::write(&f, &deep).unwrap();
        let t = std::time::Instant::now();
        let e = read::<Two>(&f).err().unwrap().to_string();
        assert!(e.contains("100000 levels deep"), "{e}");
        assert!(t.elapsed().as_secs_f64() < 5.0);
        assert_eq!(flow_depth("a: [1, {b: '[[['}] # [[[\n"), 2);
        // An apostrophe inside a plain value opens no string.
        assert_eq!(flow_depth("note: it's\na: [[[1]]]\n"), 3);
        assert_eq!(flow_depth("a: \"x\\\" [[\"\nb: 'it''s [['\nc: [1]\n"), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
