//! The lexical index, `lexical.bin` (bundle format 1.1): an inverted index
//! over the chunks for BM25, laid out to be read from a memory map, and the
//! code-aware analyzer that both the builder (documents) and the server
//! (queries) must run identically. Specified in docs/formats/bundle-v1.md.
//!
//! ```text
//! header (64 bytes, integers little-endian)
//!   0  magic "SHELFLX1"     8  version u32 = 1    12 reserved u32 = 0
//!   16 doc_count u64        24 term_count u64     32 total_length u64
//!   40 term_offsets_off u64 48 posting_starts_off u64  56 postings_off u64
//! doc_lengths: doc_count x u32 (tokens per chunk), at 64
//! term_offsets: (term_count + 1) x u64 into the term blob
//! term_blob: the terms, UTF-8, sorted bytewise, unique, back to back
//! posting_starts: (term_count + 1) x u64 entry indices into postings
//! postings: entries x (doc u32, tf u32), per term by increasing doc
//! ```
//!
//! Document `i` is chunk `i` of `chunks.bin`.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::layout::{Fixed, header, write_header};

/// The analyzers this code knows. Any change to what an analyzer emits
/// needs a new one (and the old one kept, so bundles built with it still
/// answer queries analyzed their way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analyzer {
    /// `code-v1`: see [`analyze`].
    CodeV1,
}

impl Analyzer {
    /// Every analyzer this code reads.
    pub const ALL: &[Analyzer] = &[Analyzer::CodeV1];
    /// The one new bundles are built with.
    pub const CURRENT: Analyzer = Analyzer::CodeV1;

    /// The lexical index kind recorded in a manifest's `settings.lexical`:
    /// the ranking function and the analyzer.
    pub fn kind(self) -> &'static str {
        match self {
            Analyzer::CodeV1 => "bm25/code-v1",
        }
    }

    /// The analyzer a manifest's `settings.lexical` names, if this code
    /// knows it.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.kind() == kind)
    }

    /// Runs this analyzer over `text`.
    pub fn analyze(self, text: &str, emit: impl FnMut(&str)) {
        match self {
            Analyzer::CodeV1 => analyze(text, emit),
        }
    }
}

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFLX1";
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 8;

/// Tokens longer than this (hashes, base64, minified code) are dropped.
const MAX_TOKEN_BYTES: usize = 48;

/// English words too common to tell chunks apart. Kept short: in code,
/// "is", "not", "and" can matter less than in prose, but identifiers such
/// as `is_valid` still index their parts.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for",
    "from", "had", "has", "have", "he", "how", "i", "if", "in", "into", "is", "it", "its", "me",
    "my", "of", "on", "or", "our", "so", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who",
    "will", "with", "would", "you", "your",
];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits an identifier into its words: at `_`, and where case changes from
/// lower to upper (`parseHTTPRequest` -> parse, HTTP, Request). Digits stay
/// with their letters (`utf8`, `sha256`).
fn sub_words(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for piece in word.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<(usize, char)> = piece.char_indices().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (pos, c) = chars[i];
            let prev = chars[i - 1].1;
            let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
            let boundary = (prev.is_lowercase() || prev.is_ascii_digit()) && c.is_uppercase()
                || prev.is_uppercase() && c.is_uppercase() && next_lower;
            if boundary {
                out.push(&piece[start..pos]);
                start = pos;
            }
        }
        out.push(&piece[start..]);
    }
    out
}

fn keep(token: &str) -> bool {
    let len = token.len();
    (2..=MAX_TOKEN_BYTES).contains(&len)
        && !STOPWORDS.contains(&token)
        && !(token.bytes().all(|b| b.is_ascii_digit()) && len > 8)
}

/// The analyzer (`code-v1`): lowercased tokens of `text`, in order, each
/// whole identifier (`parse_http_request`, `HTTPAdapter`) followed by its
/// words when it has several (`parse`, `http`, `request`), and each dotted
/// name (`requests.sessions.session`, `sessions.py`) after its parts.
/// Stopwords, one-letter tokens and tokens over 48 bytes are dropped.
pub fn analyze(text: &str, mut emit: impl FnMut(&str)) {
    let mut lower = String::new();
    let mut dotted = String::new();
    let mut dotted_parts = 0usize;
    let flush_dotted = |dotted: &mut String, parts: &mut usize, emit: &mut dyn FnMut(&str)| {
        if *parts > 1 && keep_dotted(dotted) {
            emit(dotted);
        }
        dotted.clear();
        *parts = 0;
    };
    let mut rest = text;
    while let Some(start) = rest.find(is_word_char) {
        // A dotted name continues only across a single '.' between words.
        let gap = &rest[..start];
        if gap != "." {
            flush_dotted(&mut dotted, &mut dotted_parts, &mut emit);
        }
        let after = &rest[start..];
        let end = after
            .find(|c: char| !is_word_char(c))
            .unwrap_or(after.len());
        let word = &after[..end];
        rest = &after[end..];
        lower.clear();
        lower.extend(word.chars().flat_map(char::to_lowercase));
        let whole = lower.trim_matches('_');
        if keep(whole) {
            emit(whole);
        }
        let words = sub_words(word);
        if words.len() > 1 {
            for w in words {
                let w = w.to_lowercase();
                if keep(&w) && w != whole {
                    emit(&w);
                }
            }
        }
        if dotted_parts > 0 {
            dotted.push('.');
        }
        dotted.push_str(&lower);
        dotted_parts += 1;
    }
    flush_dotted(&mut dotted, &mut dotted_parts, &mut emit);
}

fn keep_dotted(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES && token.split('.').all(|p| !p.is_empty())
}

/// The terms of a chunk as indexed: its path's terms, then its text's.
pub fn analyze_chunk(path: &str, text: &str, mut emit: impl FnMut(&str)) {
    analyze(path, &mut emit);
    analyze(text, &mut emit);
}

/// Why bytes are not a valid lexical index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("lexical.bin is invalid: {0}")]
pub struct LexicalIndexError(String);

fn bad<T>(why: impl Into<String>) -> Result<T, LexicalIndexError> {
    Err(LexicalIndexError(why.into()))
}

/// One document's terms, counted: each distinct term once with its
/// frequency, sorted by term, and the document's length in terms. Made on
/// any thread (analysis is most of an index's cost), then added in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountedDoc {
    terms: Vec<(String, u32)>,
    length: u32,
}

impl CountedDoc {
    /// Counts `terms` (repeats count).
    pub fn new<'t>(terms: impl IntoIterator<Item = &'t str>) -> Self {
        let mut all: Vec<&str> = terms.into_iter().collect();
        let length = u32::try_from(all.len()).unwrap_or(u32::MAX);
        all.sort_unstable();
        let mut counted: Vec<(String, u32)> = Vec::new();
        for t in all {
            match counted.last_mut() {
                Some((last, n)) if last == t => *n = n.saturating_add(1),
                _ => counted.push((t.to_string(), 1)),
            }
        }
        Self {
            terms: counted,
            length,
        }
    }

    /// A chunk's terms, analyzed with [`analyze_chunk`], counted.
    pub fn chunk(path: &str, text: &str) -> Self {
        let mut terms = Vec::new();
        analyze_chunk(path, text, |t| terms.push(t.to_string()));
        Self::new(terms.iter().map(String::as_str))
    }
}

/// Builds a lexical index, one document at a time, in chunk order.
#[derive(Debug, Default)]
pub struct LexicalIndexWriter {
    doc_lengths: Vec<u32>,
    /// Each distinct term's id: its place in `postings`.
    ids: HashMap<String, u32>,
    /// Postings by term id, each by increasing document.
    postings: Vec<Vec<(u32, u32)>>,
    total: u64,
}

impl LexicalIndexWriter {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds document `self.len()` with the given terms (repeats count).
    pub fn push_doc<'t>(&mut self, terms: impl IntoIterator<Item = &'t str>) {
        self.push_counted(CountedDoc::new(terms));
    }

    /// Adds document `self.len()`, counted already.
    pub fn push_counted(&mut self, doc: CountedDoc) {
        let id = self.doc_lengths.len() as u32;
        for (term, tf) in doc.terms {
            let next = self.postings.len() as u32;
            let t = *self.ids.entry(term).or_insert(next);
            if t == next {
                self.postings.push(Vec::new());
            }
            self.postings[t as usize].push((id, tf));
        }
        self.doc_lengths.push(doc.length);
        self.total += u64::from(doc.length);
    }

    /// Adds document `self.len()` as the document of `from` whose terms are
    /// `terms` (one entry of [`LexicalIndex::documents`]) and whose length
    /// is `length`: nothing is analyzed. `remap` is this writer's id of each
    /// of `from`'s terms met so far (`u32::MAX`: not yet), kept by the
    /// caller across the documents of one `from`.
    pub fn push_from(
        &mut self,
        from: &LexicalIndex<'_>,
        terms: &[(u32, u32)],
        length: u32,
        remap: &mut Vec<u32>,
    ) {
        let doc = self.doc_lengths.len() as u32;
        if remap.len() < from.term_count() {
            remap.resize(from.term_count(), u32::MAX);
        }
        for &(t, tf) in terms {
            let Some(slot) = remap.get_mut(t as usize) else {
                continue;
            };
            if *slot == u32::MAX {
                let Some(term) = from.term(t as usize) else {
                    continue;
                };
                let next = self.postings.len() as u32;
                let id = *self.ids.entry(term.to_string()).or_insert(next);
                if id == next {
                    self.postings.push(Vec::new());
                }
                *slot = id;
            }
            self.postings[*slot as usize].push((doc, tf));
        }
        self.doc_lengths.push(length);
        self.total += u64::from(length);
    }

    /// Adds a chunk, analyzed with [`analyze_chunk`].
    pub fn push_chunk(&mut self, path: &str, text: &str) {
        self.push_counted(CountedDoc::chunk(path, text));
    }

    /// Documents so far.
    pub fn len(&self) -> usize {
        self.doc_lengths.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.doc_lengths.is_empty()
    }

    /// Writes the index. Terms are sorted and documents in push order, so
    /// equal input gives equal bytes.
    pub fn write_to(&self, mut out: impl Write) -> io::Result<()> {
        let mut sorted: Vec<(&str, &Vec<(u32, u32)>)> = self
            .ids
            .iter()
            .map(|(t, &id)| (t.as_str(), &self.postings[id as usize]))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let doc_count = self.doc_lengths.len() as u64;
        let term_count = sorted.len() as u64;
        let blob_len: u64 = sorted.iter().map(|(t, _)| t.len() as u64).sum();
        let entries: u64 = sorted.iter().map(|(_, p)| p.len() as u64).sum();
        let term_offsets_off = HEADER_LEN as u64 + doc_count * 4;
        let posting_starts_off = term_offsets_off + (term_count + 1) * 8 + blob_len;
        let postings_off = posting_starts_off + (term_count + 1) * 8;
        let header = write_header(
            MAGIC,
            &[
                doc_count,
                term_count,
                self.total,
                term_offsets_off,
                posting_starts_off,
                postings_off,
            ],
        );
        let mut out = io::BufWriter::new(&mut out);
        out.write_all(&header)?;
        for len in &self.doc_lengths {
            out.write_all(&len.to_le_bytes())?;
        }
        let mut offset = 0u64;
        for (term, _) in &sorted {
            out.write_all(&offset.to_le_bytes())?;
            offset += term.len() as u64;
        }
        out.write_all(&offset.to_le_bytes())?;
        for (term, _) in &sorted {
            out.write_all(term.as_bytes())?;
        }
        let mut start = 0u64;
        for (_, list) in &sorted {
            out.write_all(&start.to_le_bytes())?;
            start += list.len() as u64;
        }
        out.write_all(&start.to_le_bytes())?;
        debug_assert_eq!(start, entries);
        for (_, list) in &sorted {
            for (doc, tf) in *list {
                out.write_all(&doc.to_le_bytes())?;
                out.write_all(&tf.to_le_bytes())?;
            }
        }
        out.flush()
    }
}

/// A read-only view over lexical index bytes (typically a memory map).
#[derive(Debug, Clone, Copy)]
pub struct LexicalIndex<'a> {
    doc_lengths: &'a [u8],
    term_offsets: &'a [u8],
    term_blob: &'a [u8],
    posting_starts: &'a [u8],
    postings: &'a [u8],
    doc_count: usize,
    term_count: usize,
    total_length: u64,
}

/// One term's postings: (document, term frequency), by increasing document.
#[derive(Debug, Clone, Copy)]
pub struct Postings<'a> {
    bytes: &'a [u8],
}

impl<'a> Postings<'a> {
    /// Documents containing the term.
    pub fn len(&self) -> usize {
        self.bytes.len() / ENTRY_LEN
    }

    /// Whether no document contains it.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + 'a {
        self.bytes.chunks_exact(ENTRY_LEN).map(|e| {
            (
                u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            )
        })
    }
}

impl<'a> LexicalIndex<'a> {
    /// Checks the header and section bounds: O(1), for a reader that already
    /// ran [`LexicalIndex::parse`] on the same immutable bytes.
    pub fn open(bytes: &'a [u8]) -> Result<Self, LexicalIndexError> {
        let fields =
            header::<6>(bytes, HEADER_LEN, MAGIC, "lexical index").map_err(LexicalIndexError)?;
        let fit = |v: u64| usize::try_from(v).ok();
        let total = fields[2];
        let (Some(docs), Some(terms), Some(to), Some(ps), Some(po)) = (
            fit(fields[0]),
            fit(fields[1]),
            fit(fields[3]),
            fit(fields[4]),
            fit(fields[5]),
        ) else {
            return bad("a header field does not fit in memory");
        };
        let sized = |n: usize, w: usize| n.checked_add(1).and_then(|n| n.checked_mul(w));
        let (Some(lengths_end), Some(offsets_len), Some(starts_len)) = (
            docs.checked_mul(4).and_then(|n| n.checked_add(HEADER_LEN)),
            sized(terms, 8),
            sized(terms, 8),
        ) else {
            return bad("section sizes overflow");
        };
        let Some(blob_start) = to.checked_add(offsets_len) else {
            return bad("section sizes overflow");
        };
        if lengths_end != to
            || blob_start > ps
            || ps.checked_add(starts_len) != Some(po)
            || po > bytes.len()
            || !(bytes.len() - po).is_multiple_of(ENTRY_LEN)
        {
            return bad("sections are not laid out back to back as the header says");
        }
        Ok(Self {
            doc_lengths: &bytes[HEADER_LEN..to],
            term_offsets: &bytes[to..blob_start],
            term_blob: &bytes[blob_start..ps],
            posting_starts: &bytes[ps..po],
            postings: &bytes[po..],
            doc_count: docs,
            term_count: terms,
            total_length: total,
        })
    }

    /// [`LexicalIndex::open`] plus validation of every offset, every term
    /// (UTF-8, sorted, unique), every posting (document in range, strictly
    /// increasing per term, tf >= 1) and the total length: after it
    /// succeeds, lookups cannot fail or return garbage.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LexicalIndexError> {
        let ix = Self::open(bytes)?;
        let mut prev_off = 0u64;
        for t in 0..=ix.term_count {
            let off = Fixed(ix.term_offsets).u64_item(t).unwrap_or(u64::MAX);
            if off < prev_off || off > ix.term_blob.len() as u64 {
                return bad(format!("term offset {t} is out of order or out of range"));
            }
            prev_off = off;
        }
        if prev_off != ix.term_blob.len() as u64 {
            return bad("the term blob has bytes no term covers");
        }
        let mut previous: Option<&[u8]> = None;
        for t in 0..ix.term_count {
            let Some(term) = ix.term_bytes(t) else {
                return bad(format!("term {t} is out of range"));
            };
            if std::str::from_utf8(term).is_err() {
                return bad(format!("term {t} is not UTF-8"));
            }
            if previous.is_some_and(|p| p >= term) {
                return bad(format!("term {t} is not sorted after the one before"));
            }
            previous = Some(term);
        }
        let entries = ix.postings.len() / ENTRY_LEN;
        let mut prev_start = 0u64;
        for t in 0..=ix.term_count {
            let start = Fixed(ix.posting_starts).u64_item(t).unwrap_or(u64::MAX);
            if start < prev_start || start > entries as u64 || (t > 0 && start == prev_start) {
                return bad(format!(
                    "posting start {t} is out of order, out of range or empty"
                ));
            }
            prev_start = start;
        }
        if prev_start != entries as u64 {
            return bad("the postings have entries no term covers");
        }
        for t in 0..ix.term_count {
            let Some(postings) = ix.postings_at(t) else {
                return bad(format!("postings of term {t} are out of range"));
            };
            let mut last: Option<u32> = None;
            for (doc, tf) in postings.iter() {
                if doc as usize >= ix.doc_count || tf == 0 || last.is_some_and(|l| l >= doc) {
                    return bad(format!("a posting of term {t} is out of range or order"));
                }
                last = Some(doc);
            }
        }
        let total: u64 = (0..ix.doc_count).map(|d| u64::from(ix.doc_len(d))).sum();
        if total != ix.total_length {
            return bad("the total length does not match the document lengths");
        }
        Ok(ix)
    }

    /// Documents (chunks).
    pub fn doc_count(&self) -> usize {
        self.doc_count
    }

    /// Distinct terms.
    pub fn term_count(&self) -> usize {
        self.term_count
    }

    /// Mean document length in terms.
    pub fn average_length(&self) -> f32 {
        if self.doc_count == 0 {
            0.0
        } else {
            self.total_length as f32 / self.doc_count as f32
        }
    }

    /// Terms in document `doc` (0 past the end).
    pub fn doc_len(&self, doc: usize) -> u32 {
        doc.checked_mul(4)
            .and_then(|at| Fixed(self.doc_lengths).u32(at))
            .unwrap_or(0)
    }

    fn term_bytes(&self, t: usize) -> Option<&'a [u8]> {
        let offsets = Fixed(self.term_offsets);
        self.term_blob
            .get(offsets.usize_item(t)?..offsets.usize_item(t.checked_add(1)?)?)
    }

    fn postings_at(&self, t: usize) -> Option<Postings<'a>> {
        let starts = Fixed(self.posting_starts);
        let (start, end) = (starts.usize_item(t)?, starts.usize_item(t.checked_add(1)?)?);
        Some(Postings {
            bytes: self
                .postings
                .get(start.checked_mul(ENTRY_LEN)?..end.checked_mul(ENTRY_LEN)?)?,
        })
    }

    /// Term `t` (in sorted order), if it is one of this index's.
    pub fn term(&self, t: usize) -> Option<&'a str> {
        std::str::from_utf8(self.term_bytes(t)?).ok()
    }

    /// Every document's terms: `(term index, frequency)` pairs, by
    /// increasing term, per document. The postings turned around, in one
    /// pass over them, so that a builder can carry an unchanged chunk's
    /// terms into a new index without analyzing its text again.
    pub fn documents(&self) -> Vec<Vec<(u32, u32)>> {
        let mut docs: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.doc_count];
        for t in 0..self.term_count {
            let Some(postings) = self.postings_at(t) else {
                continue;
            };
            for (doc, tf) in postings.iter() {
                if let Some(d) = docs.get_mut(doc as usize) {
                    d.push((t as u32, tf));
                }
            }
        }
        docs
    }

    /// The postings of `term` (as the analyzer emits it), if any document
    /// has it. A binary search over the sorted terms.
    pub fn lookup(&self, term: &str) -> Option<Postings<'a>> {
        let (mut lo, mut hi) = (0usize, self.term_count);
        let needle = term.as_bytes();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.term_bytes(mid)?.cmp(needle) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.postings_at(mid),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyze(text, |t| out.push(t.to_string()));
        out
    }

    #[test]
    fn identifiers_are_kept_whole_and_split_into_words() {
        assert_eq!(
            terms("parse_http_request"),
            ["parse_http_request", "parse", "http", "request"]
        );
        assert_eq!(terms("HTTPAdapter"), ["httpadapter", "http", "adapter"]);
        assert_eq!(terms("getUserID2"), ["getuserid2", "get", "user", "id2"]);
        assert_eq!(terms("utf8 sha256"), ["utf8", "sha256"]);
        assert_eq!(terms("__init__"), ["init"]);
    }

    #[test]
    fn dotted_names_and_paths_are_kept_whole_after_their_parts() {
        assert_eq!(
            terms("requests.sessions.Session()"),
            [
                "requests",
                "sessions",
                "session",
                "requests.sessions.session"
            ]
        );
        assert_eq!(
            terms("see requests/sessions.py: line"),
            ["see", "requests", "sessions", "py", "sessions.py", "line"]
        );
        // A sentence's full stop does not join words across a space.
        assert_eq!(terms("end. Next"), ["end", "next"]);
    }

    #[test]
    fn stopwords_short_and_overlong_tokens_are_dropped() {
        assert_eq!(terms("the x of a Cache is"), ["cache"]);
        let long = "a".repeat(60);
        assert!(terms(&long).is_empty());
        assert_eq!(terms("404 1234567890"), ["404"]);
        assert_eq!(terms("Ünïcödé naïve"), ["ünïcödé", "naïve"]);
    }

    fn sample() -> Vec<u8> {
        let mut w = LexicalIndexWriter::new();
        w.push_chunk(
            "src/retry.rs",
            "fn retry_policy() { backoff(); backoff(); }",
        );
        w.push_chunk("docs/tags.md", "Tags move by compare-and-swap.");
        w.push_chunk("src/cache.rs", "struct LruCache; // retry never");
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_postings_and_lengths() {
        let bytes = sample();
        let ix = LexicalIndex::parse(&bytes).unwrap();
        assert_eq!(ix.doc_count(), 3);
        let retry: Vec<_> = ix.lookup("retry").unwrap().iter().collect();
        assert_eq!(
            retry,
            [(0, 2), (2, 1)],
            "path and text of chunk 0, text of chunk 2"
        );
        assert_eq!(
            ix.lookup("backoff").unwrap().iter().collect::<Vec<_>>(),
            [(0, 2)]
        );
        assert!(ix.lookup("absent").is_none());
        assert!(ix.lookup("").is_none());
        // src, retry, rs, retry.rs; fn, retry_policy, retry, policy, backoff x2
        assert_eq!(ix.doc_len(0), 10);
        assert_eq!(ix.doc_len(99), 0);
        assert!(ix.average_length() > 0.0);
    }

    /// What an incremental build does: some documents carried over from an
    /// earlier index, some analyzed now, in a new order. The bytes must be
    /// those of analyzing everything.
    #[test]
    fn documents_carried_over_give_the_bytes_of_analyzing_them_again() {
        let old = sample();
        let from = LexicalIndex::parse(&old).unwrap();
        let docs = from.documents();
        assert_eq!(docs.len(), 3);
        let mut carried = LexicalIndexWriter::new();
        let mut remap = Vec::new();
        carried.push_from(&from, &docs[2], from.doc_len(2), &mut remap);
        carried.push_chunk("src/new.rs", "fn backoff_again() { retry() }");
        carried.push_from(&from, &docs[0], from.doc_len(0), &mut remap);
        let mut fresh = LexicalIndexWriter::new();
        fresh.push_chunk("src/cache.rs", "struct LruCache; // retry never");
        fresh.push_chunk("src/new.rs", "fn backoff_again() { retry() }");
        fresh.push_chunk(
            "src/retry.rs",
            "fn retry_policy() { backoff(); backoff(); }",
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        carried.write_to(&mut a).unwrap();
        fresh.write_to(&mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn same_input_gives_same_bytes_and_an_empty_index_is_valid() {
        assert_eq!(sample(), sample());
        let mut out = Vec::new();
        LexicalIndexWriter::new().write_to(&mut out).unwrap();
        let ix = LexicalIndex::parse(&out).unwrap();
        assert_eq!((ix.doc_count(), ix.term_count()), (0, 0));
        assert!(ix.lookup("x").is_none());
    }

    #[test]
    fn refuses_corruption_instead_of_panicking() {
        let good = sample();
        assert!(LexicalIndex::parse(&good[..good.len() - 1]).is_err());
        assert!(LexicalIndex::parse(&good[..20]).is_err());
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut m = good.clone();
                m[i] ^= flip;
                if let Ok(ix) = LexicalIndex::parse(&m) {
                    // Whatever parses answers lookups without panicking.
                    for t in ["retry", "backoff", "cache", "zzz"] {
                        if let Some(p) = ix.lookup(t) {
                            assert!(
                                p.iter()
                                    .all(|(d, tf)| (d as usize) < ix.doc_count() && tf > 0)
                            );
                        }
                    }
                }
            }
        }
    }
}
