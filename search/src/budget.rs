//! A bound on how much an answer says, in tokens (`max_tokens`), for
//! clients that pay for every token they read (AI assistants). Tokens are
//! estimated, not counted with a tokenizer: the reader's tokenizer is not
//! ours to know, and one token per [`BYTES_PER_TOKEN`] bytes of UTF-8 text
//! is the usual rule for code and English (docs/api.md). What is cut is
//! always said, in a [`Truncation`], never dropped silently.

use serde::Serialize;

use crate::answer::{Answer, ResultChunk};

/// Bytes of text estimated as one token.
pub const BYTES_PER_TOKEN: usize = 4;
/// Smallest `max_tokens` accepted: room for one short result.
pub const MIN_MAX_TOKENS: usize = 64;
/// Largest `max_tokens` accepted.
pub const MAX_MAX_TOKENS: usize = 200_000;

/// Estimated tokens of `text`.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_TOKEN)
}

/// Checks a `max_tokens` value against the bounds.
pub fn check_max_tokens(max_tokens: usize) -> Result<usize, String> {
    if (MIN_MAX_TOKENS..=MAX_MAX_TOKENS).contains(&max_tokens) {
        Ok(max_tokens)
    } else {
        Err(format!(
            "max_tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}, got {max_tokens}"
        ))
    }
}

/// What an answer left out to stay within `max_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Truncation {
    /// The bound that was applied.
    pub max_tokens: usize,
    /// Items (results, matches, definitions) left out entirely.
    pub omitted: usize,
    /// Whether the last item shown had its text cut short.
    pub cut: bool,
    /// For a file: the first line not shown, to ask for next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start_line: Option<u32>,
    /// What was left out and how to get it, in words.
    pub detail: String,
}

impl Truncation {
    /// `shown` of `total` listed items (`what`: "entries", "uses"), the
    /// rest left out by `budget` (when `by_budget`) or by the request's
    /// `limit`; `hint` says how to see them. `None` when nothing was left
    /// out.
    pub fn of_list(
        shown: usize,
        total: usize,
        what: &str,
        budget: &Budget,
        by_budget: bool,
        limit: usize,
        hint: &str,
    ) -> Option<Self> {
        (shown < total).then(|| Truncation {
            max_tokens: budget.max_tokens(),
            omitted: total - shown,
            cut: false,
            next_start_line: None,
            detail: format!(
                "{shown} of {total} {what} listed ({}); {hint}",
                if by_budget {
                    format!("max_tokens {}", budget.max_tokens())
                } else {
                    format!("the limit of {limit}")
                }
            ),
        })
    }
}

/// Bytes left to spend.
#[derive(Debug, Clone)]
pub struct Budget {
    max_tokens: usize,
    left: usize,
}

impl Budget {
    /// A budget of `max_tokens` estimated tokens.
    pub fn new(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            left: max_tokens.saturating_mul(BYTES_PER_TOKEN),
        }
    }

    /// The bound.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Spends `bytes` if they fit; says whether they did.
    pub fn take(&mut self, bytes: usize) -> bool {
        if bytes <= self.left {
            self.left -= bytes;
            true
        } else {
            false
        }
    }

    /// Spends what is left on the longest prefix of whole lines of `text`
    /// that fits (at least nothing): the prefix, and how many lines it
    /// has. All of `text` when it fits.
    pub fn take_lines<'t>(&mut self, text: &'t str) -> (&'t str, usize) {
        if self.take(text.len()) {
            return (text, text.lines().count());
        }
        let mut end = 0;
        let mut lines = 0;
        for line in text.split_inclusive('\n') {
            if end + line.len() > self.left {
                break;
            }
            end += line.len();
            lines += 1;
        }
        self.left -= end;
        (&text[..end], lines)
    }

    /// Whether nothing is left.
    pub fn is_spent(&self) -> bool {
        self.left == 0
    }
}

/// What a reader sees of a chunk besides its text: its path, lines, score
/// and repository (bytes, an estimate).
const CHUNK_OVERHEAD: usize = 64;

/// Charges `chunk` to `budget`: whole if it fits, else the lines of its
/// text that fit (the chunk's `end_line` then says where it stops). With
/// `first`, a chunk whose first line does not fit is cut inside that line
/// (at a character boundary) rather than left out, so an answer never
/// shows nothing while it has results. `None` when it is left out.
fn fit_chunk(budget: &mut Budget, chunk: &mut ResultChunk, first: bool) -> Option<bool> {
    if !budget.take(CHUNK_OVERHEAD + chunk.path.len()) && !first {
        return None;
    }
    let (shown, lines) = budget.take_lines(&chunk.text);
    if lines == 0 && !chunk.text.is_empty() {
        if !first {
            return None;
        }
        let mut end = budget.left.min(chunk.text.len());
        while !chunk.text.is_char_boundary(end) {
            end -= 1;
        }
        budget.left -= end;
        chunk.text.truncate(end);
        chunk.end_line = chunk.start_line;
        return Some(true);
    }
    let cut = shown.len() < chunk.text.len();
    if cut {
        chunk.end_line = chunk.start_line + lines as u32 - 1;
        chunk.text.truncate(shown.len());
    }
    Some(cut)
}

/// Counts of what a fitting kept and left out.
#[derive(Debug, Clone, Copy, Default)]
struct Fitted {
    shown: usize,
    omitted: usize,
    cut: bool,
}

impl Fitted {
    /// Fits `chunks` in rank order: whole while they fit, the first that
    /// does not cut to what does, the rest left out.
    fn chunks(&mut self, budget: &mut Budget, chunks: &mut Vec<ResultChunk>) {
        let mut keep = 0;
        for c in chunks.iter_mut() {
            if self.omitted > 0 || self.cut {
                break;
            }
            match fit_chunk(budget, c, self.shown + keep == 0) {
                Some(was_cut) => {
                    keep += 1;
                    self.cut |= was_cut;
                }
                None => break,
            }
        }
        self.omitted += chunks.len() - keep;
        chunks.truncate(keep);
        self.shown += keep;
    }

    fn truncation(self, max_tokens: usize, hint: &str) -> Option<Truncation> {
        let Fitted {
            shown,
            omitted,
            cut,
        } = self;
        (omitted > 0 || cut).then(|| Truncation {
            max_tokens,
            omitted,
            cut,
            next_start_line: None,
            detail: format!(
                "{shown} {} shown{}{}; {hint}",
                if shown == 1 { "chunk" } else { "chunks" },
                if cut { ", the last cut short" } else { "" },
                if omitted > 0 {
                    format!(", {omitted} left out")
                } else {
                    String::new()
                }
            ),
        })
    }
}

/// Cuts ranked `chunks` to `max_tokens` estimated tokens, after
/// `header_bytes` of the answer's own (its query, its bundles): results in
/// rank order while they fit, the first that does not cut to the lines
/// that do (never nothing: the first result is cut inside its first line
/// if need be), the rest left out; what was left out, in words with
/// `hint`.
pub fn fit_chunks(
    chunks: &mut Vec<ResultChunk>,
    max_tokens: usize,
    header_bytes: usize,
    hint: &str,
) -> Option<Truncation> {
    let mut budget = Budget::new(max_tokens);
    budget.take(header_bytes.min(budget.left));
    let mut fitted = Fitted::default();
    fitted.chunks(&mut budget, chunks);
    fitted.truncation(max_tokens, hint)
}

impl Answer {
    /// Cuts the answer to `max_tokens` estimated tokens ([`fit_chunks`];
    /// with `group=file`, each file's chunks in file rank order), all of
    /// it said in `truncated`.
    pub fn fit(&mut self, max_tokens: usize) {
        let mut budget = Budget::new(max_tokens);
        budget.take((self.query.len() + 128).min(budget.left));
        let mut fitted = Fitted::default();
        if let Some(results) = self.results.as_mut() {
            fitted.chunks(&mut budget, results);
        }
        if let Some(files) = self.files.as_mut() {
            for f in files.iter_mut() {
                fitted.chunks(&mut budget, &mut f.chunks);
            }
            files.retain(|f| !f.chunks.is_empty());
        }
        self.truncated = fitted.truncation(
            max_tokens,
            "raise max_tokens, lower k, or read a file with read_file",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_take_whole_items_then_whole_lines_and_never_exceed() {
        let mut b = Budget::new(4); // 16 bytes
        assert!(b.take(10));
        assert!(!b.take(7), "7 more would pass 16");
        let (shown, lines) = b.take_lines("ab\ncd\nef\n");
        assert_eq!((shown, lines), ("ab\ncd\n", 2));
        assert!(b.is_spent());
        let mut b = Budget::new(100);
        assert_eq!(b.take_lines("all\nof it"), ("all\nof it", 2));
        assert_eq!(estimate_tokens("12345"), 2);
        assert!(check_max_tokens(10).unwrap_err().contains("between 64"));
        assert_eq!(check_max_tokens(1000), Ok(1000));
    }

    fn chunk(n: usize, text: &str) -> ResultChunk {
        ResultChunk {
            rank: n,
            repo: "r".into(),
            score: 1.0,
            semantic_score: None,
            lexical_score: None,
            path: "src/a.rs".into(),
            start_line: 10,
            end_line: 10 + text.lines().count() as u32 - 1,
            language: None,
            chunk_id: String::new(),
            text: text.into(),
        }
    }

    #[test]
    fn a_budget_too_small_for_one_line_cuts_the_first_result_and_says_so() {
        let long_line = format!("{}\nsecond line\n", "x".repeat(1000));
        let mut chunks = vec![chunk(1, &long_line), chunk(2, "fn b() {}\n")];
        let t = fit_chunks(&mut chunks, 64, 100, "hint").unwrap();
        assert_eq!(chunks.len(), 1, "the first result is shown, cut");
        assert!(t.cut && t.omitted == 1, "{t:?}");
        assert!(!chunks[0].text.is_empty() && chunks[0].text.len() < 1000);
        assert_eq!(chunks[0].end_line, 10);
        assert!(
            t.detail
                .contains("1 chunk shown, the last cut short, 1 left out"),
            "{}",
            t.detail
        );
        let mut roomy = vec![chunk(1, "a\n"), chunk(2, "b\n")];
        assert!(fit_chunks(&mut roomy, 1000, 0, "hint").is_none());
        assert_eq!(roomy.len(), 2);
    }
}
