//! MediaWiki markup -> prose, for the Wikipedia dump of the bundled corpus.
//!
//! Hand-written because the Rust wikitext parsers are unmaintained and
//! build full syntax trees, while a corpus needs only the running prose:
//! comments, references, maths, tables and templates go (a few inline
//! templates that carry words, such as `{{convert|5|km}}`, keep them);
//! `[[target|label]]` becomes its label; file, category and interlanguage
//! links go; bold and italic quotes go; HTML entities are decoded. The
//! article ends at its first reference-style section (See also,
//! References, External links, ...). Lines that are lists, indents, table
//! rows, captions or mostly non-letters are dropped, since they are not
//! sentences of the text.

use regex::Regex;
use std::sync::LazyLock;

/// Sections after which an article holds only references and lists.
const STOP_SECTIONS: &[&str] = &[
    "see also",
    "references",
    "notes",
    "footnotes",
    "citations",
    "further reading",
    "external links",
    "bibliography",
    "sources",
    "notes and references",
    "references and notes",
    "works cited",
    "primary sources",
    "secondary sources",
    "general references",
    "reference",
    "literature",
    "selected bibliography",
    "external link",
    "notes and citations",
    "sources and further reading",
];

/// Tags whose content is not prose.
const DROP_TAGS: &[&str] = &[
    "ref",
    "math",
    "chem",
    "gallery",
    "timeline",
    "imagemap",
    "source",
    "syntaxhighlight",
    "pre",
    "score",
    "hiero",
    "code",
    "graph",
];

fn re(s: &str) -> Regex {
    Regex::new(s).expect("valid regex")
}

static COMMENT: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)<!--.*?-->"));
static SELF_CLOSE: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"(?is)<(?:{})\b[^<>]*/>", DROP_TAGS.join("|"))));
/// One pattern per tag: the regex crate has no back-references.
static DROP_TAG: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    DROP_TAGS
        .iter()
        .map(|t| re(&format!(r"(?is)<{t}\b[^<>]*>.*?</{t}\s*>")))
        .collect()
});
static TAG: LazyLock<Regex> = LazyLock::new(|| re(r"</?[A-Za-z][^<>]*>"));
static EXT_LINK: LazyLock<Regex> =
    LazyLock::new(|| re(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]"));
static URL: LazyLock<Regex> = LazyLock::new(|| re(r"(?:https?|ftp)://\S+"));
static LINK: LazyLock<Regex> = LazyLock::new(|| re(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]"));
static HEADING: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(=+)\s*(.*?)\s*=+\s*$"));
static CONVERT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\{\{\s*(?:convert|cvt)\s*\|\s*([^|{}]+?)\s*\|\s*([^|{}]+?)\s*(?:\|[^{}]*)?\}\}")
});
static LANG: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\{\{\s*lang\s*\|\s*[^|{}]*\|\s*([^|{}]*?)\s*(?:\|[^{}]*)?\}\}"));
static KEEP_ONE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\{\{\s*(?:nowrap|small|sm|smaller|nobr|em|strong)\s*\|\s*([^|{}]*?)\s*\}\}")
});
static NS_LINK: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^\s*:?\s*(?:file|image|category|media|wikt|wiktionary|[a-z]{2,3}(?:-[a-z]+)?)\s*:")
});
static OPEN_PAREN_PUNCT: LazyLock<Regex> = LazyLock::new(|| re(r"\(\s*[,;:]+\s*"));
static CLOSE_PAREN_PUNCT: LazyLock<Regex> = LazyLock::new(|| re(r"\s*[,;:]+\s*\)"));
static EMPTY_PARENS: LazyLock<Regex> = LazyLock::new(|| re(r"\s*\(\s*\)"));
static SPACE_BEFORE_PUNCT: LazyLock<Regex> = LazyLock::new(|| re(r"\s+([,.;:!?])"));
static DISAMBIG: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\{\{\s*(?:disambig|disambiguation|dab)\s*(?:\||\}\})"));

/// Whether a page is a disambiguation page rather than an article.
pub fn is_disambiguation(title: &str, raw: &str) -> bool {
    title.contains("(disambiguation)") || DISAMBIG.is_match(raw)
}

/// Whether a page's text is a redirect.
pub fn is_redirect(raw: &str) -> bool {
    raw.trim_start()
        .to_ascii_uppercase()
        .starts_with("#REDIRECT")
}

/// Removes balanced `open ... close` spans, nested ones included; `keep`
/// may spare a span, given the text just inside its opening.
fn remove_nested(text: &str, open: &str, close: &str, remove: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(j) = text[i..].find(open).map(|j| j + i) {
        let inner = j + open.len();
        if !remove(&text[inner..]) {
            out.push_str(&text[i..inner]);
            i = inner;
            continue;
        }
        out.push_str(&text[i..j]);
        let (mut depth, mut k) = (1usize, inner);
        while k < text.len() && depth > 0 {
            if text[k..].starts_with(open) {
                depth += 1;
                k += open.len();
            } else if text[k..].starts_with(close) {
                depth -= 1;
                k += close.len();
            } else {
                k += text[k..].chars().next().map_or(1, char::len_utf8);
            }
        }
        i = k;
    }
    out.push_str(&text[i.min(text.len())..]);
    out
}

/// The prose of an article's wiki markup, one paragraph per line.
pub fn clean(raw: &str) -> String {
    let mut t = COMMENT.replace_all(raw, "").into_owned();
    t = SELF_CLOSE.replace_all(&t, "").into_owned();
    for r in DROP_TAG.iter() {
        t = r.replace_all(&t, "").into_owned();
    }
    t = CONVERT.replace_all(&t, "$1 $2").into_owned();
    t = LANG.replace_all(&t, "$1").into_owned();
    t = KEEP_ONE.replace_all(&t, "$1").into_owned();
    t = remove_nested(&t, "{{", "}}", |_| true);
    t = remove_nested(&t, "{|", "|}", |_| true);
    t = remove_nested(&t, "[[", "]]", |inner| NS_LINK.is_match(inner));
    t = TAG.replace_all(&t, "").into_owned();
    for _ in 0..3 {
        // Links inside link labels.
        t = LINK
            .replace_all(&t, |c: &regex::Captures| match c.get(2) {
                Some(label) => label.as_str().trim().to_string(),
                None => {
                    let target = &c[1];
                    match target.strip_prefix('#') {
                        Some(anchor) => anchor.trim().to_string(),
                        None => target.split('#').next().unwrap_or("").trim().to_string(),
                    }
                }
            })
            .into_owned();
    }
    t = EXT_LINK
        .replace_all(&t, |c: &regex::Captures| {
            c.get(1).map_or(String::new(), |m| m.as_str().to_string())
        })
        .into_owned();
    t = URL.replace_all(&t, "").into_owned();
    t = t.replace("'''", "").replace("''", "");
    let t = html_escape::decode_html_entities(&t)
        .replace('\u{a0}', " ")
        .replace('\u{200b}', "");
    let mut paras = Vec::new();
    for line in t.split('\n') {
        if let Some(h) = HEADING.captures(line) {
            let name = h[2].trim().to_lowercase();
            if STOP_SECTIONS.contains(&name.trim_end_matches(':')) {
                break;
            }
            continue;
        }
        let s = line.trim();
        if s.is_empty() || s.starts_with("__") || s.starts_with(|c| "*#:;|!{}[]=<".contains(c)) {
            continue;
        }
        let mut s = s.to_string();
        for _ in 0..2 {
            // "(, X, )" and "( )" left by removed templates and references.
            s = OPEN_PAREN_PUNCT.replace_all(&s, "(").into_owned();
            s = CLOSE_PAREN_PUNCT.replace_all(&s, ")").into_owned();
            s = EMPTY_PARENS.replace_all(&s, "").into_owned();
        }
        s = SPACE_BEFORE_PUNCT.replace_all(&s, "$1").into_owned();
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let letters = s.chars().filter(|c| c.is_alphabetic()).count();
        if letters < 20 || 2 * letters < s.chars().count() {
            continue;
        }
        // Captions and list remnants do not end like a sentence.
        if !s.ends_with(|c| ".!?\"'):\u{201d}\u{2019}".contains(c)) {
            continue;
        }
        paras.push(s);
    }
    paras.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_prose_and_drops_the_markup() {
        let raw = "{{Infobox country|name=X}}\n'''Anarchism''' is a [[political philosophy]] that \
                   rejects [[hierarchy|hierarchies]].<ref>Some book, p. 3.</ref> It spans \
                   {{convert|5|km}} of text.<!-- hidden -->\n\
                   [[File:Flag.png|thumb|A flag caption]]\n\
                   * a list item that is long enough to count as letters.\n\
                   {| class=\"wikitable\"\n| cell || cell\n|}\n\
                   == History ==\n\
                   Early [[Greece|Greek]] thinkers &amp; others wrote about it at length ( ).\n\
                   == References ==\n\
                   Anything after the references is never kept at all.";
        let c = clean(raw);
        assert_eq!(
            c,
            "Anarchism is a political philosophy that rejects hierarchies. It spans 5 km of text.\n\
             Early Greek thinkers & others wrote about it at length."
        );
    }

    #[test]
    fn knows_redirects_and_disambiguation_pages() {
        assert!(is_redirect("  #REDIRECT [[Computer accessibility]]"));
        assert!(!is_redirect("Redirects are ..."));
        assert!(is_disambiguation("Mercury (disambiguation)", ""));
        assert!(is_disambiguation(
            "AA",
            "'''AA''' may mean:\n{{disambiguation}}"
        ));
        assert!(is_disambiguation("AB", "{{Disambiguation|geo}}"));
        assert!(!is_disambiguation("Anarchism", "text"));
        // Cleanup tags inside real articles are not disambiguation pages.
        assert!(!is_disambiguation(
            "Alloy",
            "steel{{Disambiguation needed|date=May 2020}}"
        ));
        assert!(!is_disambiguation("Alloy", "{{disambig-cleanup}}"));
    }
}
