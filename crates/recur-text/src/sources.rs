//! Reading documents for the corpus builder, in the forms the bundled
//! sources come in and the generic ones a user brings:
//!
//! - `jsonl`: one JSON object per line, `{"id": ..., "text": ...}` (`id`
//!   optional; `title` is taken when there is no `id`);
//! - `text`: a plain text file is one document, paragraphs on their lines;
//! - `lines`: one document per line (the Lee news corpus, `.cor`);
//! - `wiki-xml`: a MediaWiki XML dump, `.xml` or `.xml.bz2` (articles only:
//!   redirects, other namespaces and disambiguation pages are skipped);
//! - `wiki-summaries`: a JSON object of `title -> {extract, ...}` (the
//!   offline Wikipedia lead sections);
//! - `speeches`: a JSON list of `{name, speeches: [text]}` (the convention
//!   speeches), with stage directions, speaker labels and crowd lines
//!   removed.
//!
//! Files must be UTF-8; anything else is refused with the byte offset of
//! the first bad byte, so a Latin-1 file is never read as garbage.

use crate::wikitext;
use quick_xml::events::Event;
use recur_core::{Error, Result};
use regex::Regex;
use std::io::Read;
use std::path::Path;
use std::sync::LazyLock;

/// One document: its id and its text. An id the file gives (a title, an
/// `id` field) names the document across files, so a build keeps one
/// document per such id; an id recur made up (`line 7`, a file name) is
/// only unique within its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub text: String,
    /// The id came from the file, not from a line number or file name.
    pub named: bool,
}

/// How an input file is read; named in kebab case (`wiki-xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Jsonl,
    Text,
    Lines,
    WikiXml,
    WikiSummaries,
    Speeches,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Jsonl,
        Format::Text,
        Format::Lines,
        Format::WikiXml,
        Format::WikiSummaries,
        Format::Speeches,
    ];

    /// The format's name, as the CLI and configs write it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Text => "text",
            Format::Lines => "lines",
            Format::WikiXml => "wiki-xml",
            Format::WikiSummaries => "wiki-summaries",
            Format::Speeches => "speeches",
        }
    }

    /// The format a file name implies; JSON files are told apart by their
    /// shape when read.
    pub fn detect(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        if name.ends_with(".jsonl") {
            Some(Format::Jsonl)
        } else if name.ends_with(".xml") || name.ends_with(".xml.bz2") || name.ends_with(".bz2") {
            Some(Format::WikiXml)
        } else if name.ends_with(".cor") {
            Some(Format::Lines)
        } else if name.ends_with(".txt") || name.ends_with(".md") {
            Some(Format::Text)
        } else if name.ends_with(".json") {
            None
        } else {
            Some(Format::Text)
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format `{s}`; one of {}", names.join(", "))
            })
    }
}

/// What a reader skipped, by reason.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Skipped {
    pub empty: usize,
    pub redirects: usize,
    pub other_namespaces: usize,
    pub disambiguation: usize,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::data(path.display().to_string(), msg)
}

/// The most text one source file may hold (decompressed), since a source
/// is read whole.
pub const MAX_SOURCE: u64 = 8 << 30;

/// The file's bytes as UTF-8 text (a leading BOM dropped); `.bz2` files
/// are decompressed first.
pub fn read_utf8(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    let f = recur_core::fsx::open_bounded(path, MAX_SOURCE)?;
    if path.extension().is_some_and(|e| e == "bz2") {
        // Multi-stream files (Wikipedia's `-multistream` dumps, pbzip2)
        // hold several bzip2 streams one after another.
        bzip2::read::MultiBzDecoder::new(f)
            .take(MAX_SOURCE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(path, format!("not a readable bzip2 file: {e}")))?;
    } else {
        std::io::BufReader::new(f)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
    }
    if bytes.len() as u64 > MAX_SOURCE {
        return Err(bad(
            path,
            format!(
                "holds more than {MAX_SOURCE} bytes of text; split it into several input files"
            ),
        ));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(bad(
            path,
            "is UTF-16 text; recur reads UTF-8: convert it (iconv -f UTF-16 -t UTF-8)",
        ));
    }
    let bom = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    bytes.drain(..bom);
    String::from_utf8(bytes).map_err(|e| {
        bad(
            path,
            format!(
                "is not UTF-8 text (invalid byte at offset {}); convert it, e.g. iconv -f LATIN1 -t UTF-8",
                e.utf8_error().valid_up_to() + bom
            ),
        )
    })
}

/// Extensions of files that are not prose: detected as plain text they
/// made one document of table rows or bytes (a CSV built "0 articles"),
/// or chunks of markup (`<html><body><p>Hello` from a web page).
const NOT_PROSE: &[&str] = &[
    "html",
    "htm",
    "xhtml",
    "rtf",
    "doc",
    "odt",
    "epub",
    "csv",
    "tsv",
    "parquet",
    "pq",
    "npz",
    "npy",
    "zip",
    "gz",
    "tar",
    "pdf",
    "docx",
    "xlsx",
    "xls",
    "safetensors",
    "pt",
    "bin",
    "onnx",
];

/// Reads every document of `path`. `format` None detects it.
pub fn read(path: &Path, format: Option<Format>) -> Result<(Vec<Document>, Skipped)> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if format.is_none() && NOT_PROSE.contains(&ext.as_str()) {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        return Err(bad(
            path,
            format!(
                "a .{ext} file is not one of the formats a corpus is built from ({}); \
                 convert it to one, or give --format to read it as one",
                names.join(", ")
            ),
        ));
    }
    let text = read_utf8(path)?;
    // Old Mac line ends (a lone CR) are line ends too: a .txt of them read
    // as one paragraph, a .cor as one document.
    let text = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    };
    // A web page under another name (.php, .shtml, none) is markup too.
    let head: String = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .chars()
        .take(14)
        .collect::<String>()
        .to_lowercase();
    if format.is_none() && (head.starts_with("<!doctype html") || head.starts_with("<html")) {
        return Err(bad(
            path,
            "is a web page (it starts with <html or <!DOCTYPE html): its text would be read \
             with its tags; save the page's text (or give --format to read it anyway)",
        ));
    }
    let format = match format.or_else(|| Format::detect(path)) {
        Some(f) => f,
        None => json_shape(path, &text)?,
    };
    let mut skipped = Skipped::default();
    let docs = match format {
        Format::Jsonl => jsonl(path, &text)?,
        Format::Text => vec![Document {
            id: path
                .file_stem()
                .map_or("document".into(), |s| s.to_string_lossy().to_string()),
            text: unwrap_lines(&text),
            named: false,
        }],
        Format::Lines => text
            .lines()
            .enumerate()
            .map(|(i, l)| Document {
                id: format!("line {}", i + 1),
                text: l.to_string(),
                named: false,
            })
            .collect(),
        Format::WikiXml => wiki_xml(path, &text, &mut skipped)?,
        Format::WikiSummaries => summaries(path, &text)?,
        Format::Speeches => speeches(path, &text)?,
    };
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        if d.text.trim().is_empty() {
            skipped.empty += 1;
        } else {
            out.push(d);
        }
    }
    Ok((out, skipped))
}

/// Plain text as paragraphs, one per line: blank lines separate
/// paragraphs; single line breaks inside one (hard-wrapped text) are
/// spaces, so no sentence is cut at a wrap.
fn unwrap_lines(text: &str) -> String {
    let mut paras = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                paras.push(cur.join(" "));
                cur.clear();
            }
        } else {
            cur.push(line.trim());
        }
    }
    if !cur.is_empty() {
        paras.push(cur.join(" "));
    }
    paras.join("\n")
}

/// Tells the JSON forms apart by their shape.
fn json_shape(path: &Path, text: &str) -> Result<Format> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        bad(
            path,
            format!("not JSON ({e}); for one object per line name it .jsonl"),
        )
    })?;
    let is_summaries = v
        .as_object()
        .and_then(|o| o.values().next())
        .is_some_and(|r| r.get("extract").is_some());
    let is_speeches = v
        .as_array()
        .and_then(|a| a.first())
        .is_some_and(|r| r.get("speeches").is_some());
    if is_summaries {
        Ok(Format::WikiSummaries)
    } else if is_speeches {
        Ok(Format::Speeches)
    } else {
        Err(bad(
            path,
            "a JSON file recur does not know: expected {title: {extract}} (Wikipedia summaries) \
             or [{name, speeches: [...]}] (speeches); give documents as JSON lines {\"id\", \"text\"} in a .jsonl file",
        ))
    }
}

fn jsonl(path: &Path, text: &str) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| bad(path, format!("line {}: {msg}", i + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| at("no string field \"text\"".into()))?;
        // A null or empty id is none: the title names the document then,
        // else its line.
        let given = |k: &str| {
            v.get(k)
                .filter(|x| !x.is_null() && x.as_str().is_none_or(|s| !s.trim().is_empty()))
        };
        let (id, named) = match given("id").or_else(|| given("title")) {
            Some(serde_json::Value::String(s)) => (s.clone(), true),
            Some(other) => (other.to_string(), true),
            None => (format!("line {}", i + 1), false),
        };
        docs.push(Document {
            id,
            text: text.to_string(),
            named,
        });
    }
    Ok(docs)
}

fn summaries(path: &Path, text: &str) -> Result<Vec<Document>> {
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| {
            bad(
                path,
                format!("not a JSON object of title -> {{extract}}: {e}"),
            )
        })?;
    Ok(v.into_iter()
        .map(|(title, rec)| Document {
            text: rec
                .get("extract")
                .and_then(|e| e.as_str())
                .unwrap_or("")
                .to_string(),
            id: title,
            named: true,
        })
        .collect())
}

static CROWD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*AUDIENCE[A-Z ]*:").unwrap());
static STAGE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\([^()]{0,80}\)").unwrap());
static SPEAKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z][A-Z .'\-]{2,40}:\s*").unwrap());

/// A transcript without crowd lines, stage directions or speaker labels.
fn clean_speech(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.split('\n') {
        if CROWD.is_match(line) {
            continue;
        }
        let line = STAGE.replace_all(line, " ");
        let line = SPEAKER.replace(line.trim(), "");
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines.join("\n")
}

/// Speeches of every group, interleaved (first of each, second of each,
/// ...) so that any prefix of the list holds all groups.
fn speeches(path: &Path, text: &str) -> Result<Vec<Document>> {
    #[derive(serde::Deserialize)]
    struct Group {
        name: String,
        speeches: Vec<String>,
    }
    let groups: Vec<Group> = serde_json::from_str(text)
        .map_err(|e| bad(path, format!("not a JSON list of {{name, speeches}}: {e}")))?;
    let longest = groups.iter().map(|g| g.speeches.len()).max().unwrap_or(0);
    let mut docs = Vec::new();
    for j in 0..longest {
        for g in &groups {
            if let Some(s) = g.speeches.get(j) {
                // Made up from the speech's place in the file: two files
                // of speeches share group names, not speeches.
                docs.push(Document {
                    id: format!("{}:{j}", g.name),
                    text: clean_speech(s),
                    named: false,
                });
            }
        }
    }
    Ok(docs)
}

fn wiki_xml(path: &Path, text: &str, skipped: &mut Skipped) -> Result<Vec<Document>> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut docs = Vec::new();
    let (mut field, mut title, mut ns, mut body, mut redirect) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        false,
    );
    loop {
        let ev = reader.read_event().map_err(|e| {
            bad(
                path,
                format!("broken XML at byte {}: {e}", reader.buffer_position()),
            )
        })?;
        match ev {
            Event::Start(e) => {
                field = e.local_name().as_ref().to_string();
                if field == "page" {
                    (title, ns, body, redirect) =
                        (String::new(), String::new(), String::new(), false);
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == "redirect" => redirect = true,
            Event::Text(t) => {
                // Entities arrive as their own events (below); the text
                // as written, line ends included.
                let s = t.into_inner();
                match field.as_str() {
                    "title" => title.push_str(&s),
                    "ns" => ns.push_str(&s),
                    "text" => body.push_str(&s),
                    _ => {}
                }
            }
            Event::GeneralRef(r) => {
                // An entity such as &amp; or &#233; inside text.
                let xml_err = |e: String| bad(path, format!("XML entity: {e}"));
                let s = match r.resolve_char_ref().map_err(|e| xml_err(e.to_string()))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.into_inner();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| xml_err(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                match field.as_str() {
                    "title" => title.push_str(&s),
                    "text" => body.push_str(&s),
                    _ => {}
                }
            }
            Event::End(e) => {
                if e.local_name().as_ref() == "page" {
                    if redirect || wikitext::is_redirect(&body) {
                        skipped.redirects += 1;
                    } else if ns.trim() != "0" {
                        skipped.other_namespaces += 1;
                    } else if wikitext::is_disambiguation(&title, &body) {
                        skipped.disambiguation += 1;
                    } else {
                        docs.push(Document {
                            id: title.clone(),
                            text: wikitext::clean(&body),
                            named: true,
                        });
                    }
                }
                field.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_every_form_and_counts_empty_documents() {
        let d = tempfile::tempdir().unwrap();
        let j = file(
            d.path(),
            "a.jsonl",
            b"{\"id\": \"x\", \"text\": \"One. Two.\"}\n\n{\"text\": \"  \"}\n{\"title\": 7, \"text\": \"Three.\"}\n",
        );
        let (docs, sk) = read(&j, None).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].id.as_str(), docs[1].id.as_str()), ("x", "7"));
        assert_eq!(sk.empty, 1);

        let s = file(
            d.path(),
            "s.json",
            "[{\"name\": \"a\", \"speeches\": [\"JOHN DOE: Thank you. (Applause.) We did it.\\nAUDIENCE: Yes!\", \"Second.\"]}, \
              {\"name\": \"b\", \"speeches\": [\"Third one.\"]}]"
                .as_bytes(),
        );
        let (docs, _) = read(&s, None).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a:0", "b:0", "a:1"]);
        assert_eq!(docs[0].text, "Thank you. We did it.");

        let w = file(
            d.path(),
            "w.json",
            b"{\"T\": {\"title\": \"T\", \"extract\": \"Lead text.\"}}",
        );
        let (docs, _) = read(&w, None).unwrap();
        assert_eq!(
            docs,
            [Document {
                id: "T".into(),
                text: "Lead text.".into(),
                named: true,
            }]
        );

        // Hard-wrapped plain text keeps its sentences whole.
        let t = file(
            d.path(),
            "wrapped.txt",
            b"It was a dark\nand stormy night.\n\nNew part.\n",
        );
        let (docs, _) = read(&t, None).unwrap();
        assert_eq!(docs[0].text, "It was a dark and stormy night.\nNew part.");
        assert!(!docs[0].named);

        // A table is not read as prose unless a format is given.
        let c = file(d.path(), "rows.csv", b"a,b\n1,2\n");
        let e = read(&c, None).unwrap_err().to_string();
        assert!(
            e.contains("rows.csv") && e.contains("a .csv file") && e.contains("--format"),
            "{e}"
        );
        let (docs, _) = read(&c, Some(Format::Lines)).unwrap();
        assert_eq!(docs.len(), 2);
        // Nor is a web page's markup (it made chunks of tags).
        let h = file(
            d.path(),
            "p.HTML",
            b"<html><body><p>Hello there.</p></body></html>",
        );
        let e = read(&h, None).unwrap_err().to_string();
        assert!(e.contains("a .html file") && e.contains("--format"), "{e}");
        // Under another name too, told by its start.
        let h = file(
            d.path(),
            "p.php",
            b"\n <!DOCTYPE HTML>\n<html><p>Hello there.</p></html>",
        );
        let e = read(&h, None).unwrap_err().to_string();
        assert!(e.contains("p.php") && e.contains("is a web page"), "{e}");
    }

    #[test]
    fn reads_a_wiki_dump_keeping_articles_only() {
        let d = tempfile::tempdir().unwrap();
        let xml = r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Alpha &amp; Omega</title><ns>0</ns><revision><text xml:space="preserve">'''Alpha''' is a [[letter]] &amp;amp; a word that is used very often.</text></revision></page>
  <page><title>Beta</title><ns>0</ns><redirect title="Alpha" /><revision><text>#REDIRECT [[Alpha]]</text></revision></page>
  <page><title>Talk:Alpha</title><ns>1</ns><revision><text>Chat about the letter and everything else.</text></revision></page>
  <page><title>Gamma (disambiguation)</title><ns>0</ns><revision><text>Gamma may mean many different things here.</text></revision></page>
</mediawiki>"#;
        let p = file(d.path(), "dump.xml", xml.as_bytes());
        let (docs, sk) = read(&p, None).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].id, "Alpha & Omega");
        assert_eq!(
            docs[0].text,
            "Alpha is a letter & a word that is used very often."
        );
        assert_eq!(
            (sk.redirects, sk.other_namespaces, sk.disambiguation),
            (1, 1, 1)
        );
    }

    /// A lone CR ends a line as LF and CRLF do: paragraphs of a .txt,
    /// documents of a .cor.
    #[test]
    fn old_mac_line_ends_end_lines() {
        let d = tempfile::tempdir().unwrap();
        for (name, end) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
            let t = file(
                d.path(),
                &format!("{name}.txt"),
                format!("First line{end}wrapped.{end}{end}Second.{end}").as_bytes(),
            );
            let (docs, _) = read(&t, None).unwrap();
            assert_eq!(docs[0].text, "First line wrapped.\nSecond.", "{name}");
            let c = file(
                d.path(),
                &format!("{name}.cor"),
                format!("One.{end}Two.{end}").as_bytes(),
            );
            let (docs, _) = read(&c, None).unwrap();
            assert_eq!(docs.len(), 2, "{name}");
        }
    }

    #[test]
    fn reads_every_stream_of_a_multistream_bz2() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let page = |t: &str| {
            format!("<page><title>{t}</title><ns>0</ns><revision><text>{t} is an article with enough words in it.</text></revision></page>")
        };
        let mut bytes = Vec::new();
        for part in [
            "<mediawiki>".to_string() + &page("One"),
            page("Two") + "</mediawiki>",
        ] {
            let mut z = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            z.write_all(part.as_bytes()).unwrap();
            bytes.extend(z.finish().unwrap());
        }
        let p = file(d.path(), "dump-multistream.xml.bz2", &bytes);
        let (docs, _) = read(&p, None).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["One", "Two"]);
    }

    #[test]
    fn refuses_text_that_is_not_utf8() {
        let d = tempfile::tempdir().unwrap();
        let p = file(d.path(), "latin1.txt", b"caf\xe9 au lait");
        let e = read(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("latin1.txt") && e.contains("not UTF-8") && e.contains("offset 3"),
            "{e}"
        );
        let p = file(d.path(), "u16.txt", b"\xff\xfeh\x00i\x00");
        let e = read(&p, None).unwrap_err().to_string();
        assert!(e.contains("UTF-16"), "{e}");
        let p = file(d.path(), "bad.jsonl", b"{\"id\": 1}\n");
        let e = read(&p, None).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("\"text\""), "{e}");
    }
}
