//! Writing HTML safely: every piece of text that came from a repository,
//! a bundle or a request goes through [`esc`] (text and attribute values
//! alike) or, inside a URL, [`url`] first. Pages are built into a `String`
//! with `write!`; there is no template engine to compile.

use std::fmt::Write as _;

use aho_corasick::{AhoCorasick, MatchKind};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// `text` with `& < > " '` replaced by entities: safe in element content
/// and in a quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_esc(&mut out, text);
    out
}

/// [`esc`] appended to `out`: the runs between special characters are
/// copied whole, found with `memchr` (every page writes most of its bytes
/// through here). Each finder's next hit is kept until it is passed, so a
/// text is scanned once however many special characters it holds.
pub fn push_esc(out: &mut String, text: &str) {
    let b = text.as_bytes();
    let markup =
        |from: usize| memchr::memchr3(b'&', b'<', b'>', &b[from..]).map_or(b.len(), |i| from + i);
    let quote =
        |from: usize| memchr::memchr2(b'"', b'\'', &b[from..]).map_or(b.len(), |i| from + i);
    let (mut at, mut next_markup, mut next_quote) = (0, markup(0), quote(0));
    loop {
        let i = next_markup.min(next_quote);
        if i >= b.len() {
            break;
        }
        // ASCII bytes: `i` and `i + 1` are character boundaries.
        out.push_str(&text[at..i]);
        out.push_str(match b[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        at = i + 1;
        if i == next_markup {
            next_markup = markup(at);
        } else {
            next_quote = quote(at);
        }
    }
    out.push_str(&text[at..]);
}

/// `n` in decimal appended to `out`, without a string of its own.
pub fn push_number(out: &mut String, n: u32) {
    if n >= 10 {
        push_number(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// What stays as it is in a query-string value: letters, digits and
/// `-._~/` (a path's slashes read better unencoded and mean nothing
/// special in a query).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `value` percent-encoded for a query string (then [`esc`] it to put it
/// in an attribute).
pub fn url(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// A query string from name/value pairs, skipping empty values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        if !out.is_empty() {
            out.push('&');
        }
        let _ = write!(out, "{name}={}", url(value));
    }
    out
}

/// The link to a file's view at `line` (0: the top).
pub fn file_link(repo: &str, path: &str, line: u32) -> String {
    let mut link = format!("/file?{}", query(&[("repo", repo), ("path", path)]));
    if line > 0 {
        let _ = write!(link, "#L{line}");
    }
    link
}

/// Seconds as the largest whole unit: `3 days`, `5 minutes`.
pub fn age(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 365 => (s / 86_400, "day"),
        s => (s / (86_400 * 365), "year"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Bytes in the largest binary unit that keeps a digit before the point.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `line` escaped onto `out`, with the byte ranges in `marks` (sorted,
/// not overlapping, on character boundaries) wrapped in `<mark>`: a
/// page's lines are written straight into it, none into a string of its
/// own first.
pub fn push_marked(out: &mut String, line: &str, marks: &[(usize, usize)]) {
    let mut at = 0;
    for &(start, end) in marks {
        if start < at || end > line.len() || start >= end {
            continue;
        }
        let (Some(before), Some(inside)) = (line.get(at..start), line.get(start..end)) else {
            continue;
        };
        push_esc(out, before);
        out.push_str("<mark>");
        push_esc(out, inside);
        out.push_str("</mark>");
        at = end;
    }
    push_esc(out, line.get(at..).unwrap_or(""));
}

/// Marks a query's words in lines, ignoring ASCII case: one automaton
/// built once per page (not a search per word and line), the longest word
/// where two start at the same place.
pub struct Marker(Option<AhoCorasick>);

impl Marker {
    /// A marker of `terms` (none: it marks nothing).
    pub fn new(terms: &[String]) -> Self {
        let words: Vec<&str> = terms
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty())
            .collect();
        if words.is_empty() {
            return Self(None);
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&words);
        Self(automaton.ok())
    }

    /// The index of the first line of `text` holding any of the words:
    /// one scan of the whole text, not one per line.
    pub fn first_line(&self, text: &str) -> Option<usize> {
        let at = self.0.as_ref()?.find(text)?.start();
        Some(
            text.as_bytes()[..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
        )
    }

    /// Where the words occur in `line`: sorted, merged byte ranges.
    pub fn marks(&self, line: &str) -> Vec<(usize, usize)> {
        let Some(a) = &self.0 else {
            return Vec::new();
        };
        merge(a.find_iter(line).map(|m| (m.start(), m.end())).collect())
    }
}

/// Sorted ranges with overlaps joined.
pub fn merge(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(line: &str, marks: &[(usize, usize)]) -> String {
        let mut out = String::new();
        push_marked(&mut out, line, marks);
        out
    }

    #[test]
    fn esc_leaves_no_markup_and_no_quote_to_break_out_of() {
        let e = esc(r#"<script>alert('x')</script> "a" & b"#);
        assert_eq!(
            e,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &quot;a&quot; &amp; b"
        );
    }

    #[test]
    fn escaping_handles_every_special_character_in_any_order() {
        assert_eq!(esc("\"'<>&"), "&quot;&#39;&lt;&gt;&amp;");
        assert_eq!(esc("a'b<c'd&e\"f"), "a&#39;b&lt;c&#39;d&amp;e&quot;f");
        assert_eq!(esc("plain, ünïcode"), "plain, ünïcode");
        assert_eq!(esc(""), "");
        let mut n = String::new();
        for x in [0, 7, 10, 4010, u32::MAX] {
            push_number(&mut n, x);
            n.push(' ');
        }
        assert_eq!(n, "0 7 10 4010 4294967295 ");
    }

    #[test]
    fn urls_encode_everything_that_means_something_in_a_query_or_html() {
        assert_eq!(url("a b&c=d/e.rs\"<"), "a%20b%26c%3Dd/e.rs%22%3C");
        assert_eq!(
            file_link("r", "src/<x>.rs", 7),
            "/file?repo=r&path=src/%3Cx%3E.rs#L7"
        );
    }

    #[test]
    fn marks_wrap_terms_and_escape_around_them() {
        let line = "let <Tag> = tag_of(x);";
        let marks = Marker::new(&["tag".into()]).marks(line);
        assert_eq!(marks, vec![(5, 8), (12, 15)]);
        assert_eq!(
            marked(line, &marks),
            "let &lt;<mark>Tag</mark>&gt; = <mark>tag</mark>_of(x);"
        );
        // Out-of-range or overlapping marks are dropped, never a panic.
        assert_eq!(marked("ab", &[(1, 9), (0, 1), (0, 1)]), "<mark>a</mark>b");
        assert_eq!(merge(vec![(3, 5), (0, 4), (7, 8)]), vec![(0, 5), (7, 8)]);
    }

    #[test]
    fn the_marker_finds_every_word_ignoring_ascii_case_longest_first() {
        let m = Marker::new(&["tag".into(), "tagged".into(), "größe".into()]);
        // Non-ASCII letters match only as written.
        assert_eq!(
            m.marks("TAGGED tag Größe GRÖßE"),
            vec![(0, 6), (7, 10), (11, 18)]
        );
        assert_eq!(m.first_line("one\ntwo\r\nthe Tag"), Some(2));
        assert_eq!(m.first_line("nothing here"), None);
        // Adjacent matches are one mark; words are literal.
        assert_eq!(m.marks("tagtag"), vec![(0, 6)]);
        assert!(Marker::new(&["a.c".into()]).marks("abc").is_empty());
        assert!(Marker::new(&[]).marks("tag").is_empty());
    }

    #[test]
    fn ages_and_sizes_read_as_people_say_them() {
        assert_eq!(age(1), "1 second");
        assert_eq!(age(7200), "2 hours");
        assert_eq!(age(86_400 * 3), "3 days");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
