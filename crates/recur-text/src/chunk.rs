//! Documents -> sentence chunks, the unit Job B embeds: paragraphs split
//! on line breaks, sentences found by Wikimedia's `sentencex` segmenter
//! (abbreviations, initials, decimals and quotes handled), then the
//! original's length rule: chunks under 10 characters are dropped, chunks
//! over 500 are cut at the last word boundary before 500, and a chunk equal
//! to the one before it is dropped (repeated chants and headers).

/// Length limits of a chunk, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkRules {
    pub min_chars: usize,
    pub max_chars: usize,
}

impl Default for ChunkRules {
    fn default() -> Self {
        ChunkRules {
            min_chars: 10,
            max_chars: 500,
        }
    }
}

/// The chunks of one document, in reading order.
pub fn chunks(text: &str, rules: ChunkRules) -> Vec<String> {
    chunks_with(text, rules, false).0
}

/// What the cut at `max_chars` left out of a document: the sentences cut
/// and their characters past the cut (none when the rest is kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    pub sentences: usize,
    pub chars: usize,
}

/// [`chunks`] (or with `split_long`, [`pieces`]) and what the cut left out.
pub fn chunks_counted(text: &str, rules: ChunkRules, split_long: bool) -> (Vec<String>, Cut) {
    chunks_with(text, rules, split_long)
}

/// As [`chunks`], but a sentence over `max_chars` goes on in further
/// pieces (each cut the same way) instead of losing its end: what `/chat`
/// reads from a paragraph, where a 700-character sentence lost its last
/// 200 characters without a word. The corpus keeps the original's rule.
pub fn pieces(text: &str, rules: ChunkRules) -> Vec<String> {
    chunks_with(text, rules, true).0
}

fn chunks_with(text: &str, rules: ChunkRules, rest: bool) -> (Vec<String>, Cut) {
    let mut out: Vec<String> = Vec::new();
    let mut lost = Cut::default();
    for para in text.split('\n') {
        let para = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if para.is_empty() {
            continue;
        }
        for s in sentencex::segment("en", &para) {
            let mut s = s.trim();
            let mut cut_before = false;
            while !s.is_empty() {
                if s.chars().count() < rules.min_chars {
                    // The end of a long sentence, too short for a chunk of
                    // its own, is lost too.
                    if cut_before {
                        lost.sentences += 1;
                        lost.chars += s.chars().count();
                    }
                    break;
                }
                let head = cut(s, rules.max_chars);
                let tail = s[head.len()..].trim_start();
                // A chunk of zero-width spaces or controls is nothing to the
                // encoder (its vector is the empty text's, near every query),
                // and `/chat` answered with it; `embed` and `/chat` refuse
                // such a text.
                if out.last().is_none_or(|l| *l != head) && crate::encoder::visible(&head) {
                    out.push(head);
                }
                if !rest {
                    if !tail.is_empty() {
                        lost.sentences += 1;
                        lost.chars += tail.chars().count();
                    }
                    break;
                }
                s = tail;
                cut_before = true;
            }
        }
    }
    (out, lost)
}

/// `s` cut to at most `max` characters, at the last space before the limit
/// when there is one in the second half.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => {
            let head = &s[..end];
            match head.rfind(' ') {
                Some(sp) if sp > end / 2 => head[..sp].trim_end().to_string(),
                _ => head.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences_but_not_abbreviations_or_decimals() {
        let c = chunks(
            "Dr. Smith paid $3.50 for it in the U.S. last year. Then he left!\n\nA new paragraph starts here.",
            ChunkRules::default(),
        );
        assert_eq!(
            c,
            [
                "Dr. Smith paid $3.50 for it in the U.S. last year.",
                "Then he left!",
                "A new paragraph starts here."
            ]
        );
    }

    /// Chunks the encoder sees as nothing (zero-width spaces, controls)
    /// are not kept: their vector was the empty text's, and `/chat`
    /// answered with them.
    #[test]
    fn chunks_with_nothing_visible_are_left_out() {
        let text = format!(
            "A sentence that stays here.\n{}\n{}\nAnother sentence stays too.",
            "\u{200b}".repeat(12),
            "\u{1}".repeat(10),
        );
        assert_eq!(
            chunks(&text, ChunkRules::default()),
            ["A sentence that stays here.", "Another sentence stays too."]
        );
    }

    #[test]
    fn applies_the_length_rule_and_drops_repeats() {
        let long = "word ".repeat(150);
        let text = format!("Tiny one. Four more years! Four more years! {long}");
        let c = chunks(&text, ChunkRules::default());
        assert_eq!(c[0], "Four more years!");
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[1].chars().count() <= 500 && c[1].ends_with("word"));
        // Multi-byte text is cut on a character boundary.
        let wide = "é".repeat(600);
        let c = chunks(&wide, ChunkRules::default());
        assert_eq!(c[0].chars().count(), 500);
        // `pieces` keeps the rest of a long sentence, cut the same way.
        let text = format!("{long}and the end of it");
        let c = pieces(&text, ChunkRules::default());
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0], chunks(&text, ChunkRules::default())[0]);
        assert!(c[1].ends_with("and the end of it"), "{c:?}");
        let all: String = c.join(" ");
        assert_eq!(
            all.split_whitespace().count(),
            text.split_whitespace().count()
        );
        let c = pieces(&wide, ChunkRules::default());
        assert_eq!(c.iter().map(|p| p.chars().count()).sum::<usize>(), 600);
        // What is left out is counted: the rest past the cut, or with the
        // rest kept, an end too short for a chunk of its own.
        let (c, cut) = chunks_counted(&text, ChunkRules::default(), false);
        let kept = c[0].chars().count();
        assert_eq!(
            (cut.sentences, cut.chars + kept + 1),
            (1, text.chars().count())
        );
        let short_end = format!("{}ok end", "word ".repeat(100));
        let (c, cut) = chunks_counted(&short_end, ChunkRules::default(), true);
        assert_eq!((c.len(), cut.sentences, cut.chars), (1, 1, "ok end".len()));
        let (_, cut) = chunks_counted(&text, ChunkRules::default(), true);
        assert_eq!(cut, Cut::default());
    }
}
