//! Text from data files on its way to a terminal. Column names, cells and
//! class labels are the user's data, and a crafted file could hold escape
//! sequences that clear the screen, retitle the window or fake output
//! lines, or bidirectional overrides that reorder what is read. They are
//! shown escaped (`\u{1b}`), never passed through; line breaks and tabs of
//! recur's own layout are kept.

use std::borrow::Cow;

/// Whether `c` is shown escaped: control characters (C0, DEL, C1) other
/// than newline and tab, and the bidirectional embeddings, overrides and
/// isolates.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every `hidden` character written as `\u{..}`; borrowed when
/// there is none. For recur's own text, whose lines and tabs are layout.
pub fn printable(s: &str) -> Cow<'_, str> {
    escaped(s, hidden)
}

/// `s` as one line: [`printable`], with newlines and tabs escaped too. For
/// a value from the data put into a message, where a line break would
/// start a line the user takes for recur's.
pub fn inline(s: &str) -> Cow<'_, str> {
    escaped(s, |c| hidden(c) || c == '\n' || c == '\t')
}

fn escaped(s: &str, hide: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&hide) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hide(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_bidi_characters_only() {
        assert!(matches!(printable("plain\ttext\nok é"), Cow::Borrowed(_)));
        assert_eq!(
            printable("f\x1b]0;PWNED\x07\x1b[2Jx\r\u{202e}cba\u{7f}"),
            "f\\u{1b}]0;PWNED\\u{7}\\u{1b}[2Jx\\u{d}\\u{202e}cba\\u{7f}"
        );
        assert_eq!(printable("a\nb\tc"), "a\nb\tc");
        assert_eq!(inline("a\nmodel written\tx"), "a\\u{a}model written\\u{9}x");
    }
}
