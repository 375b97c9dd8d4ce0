//! The lexical ranker: BM25 over a bundle's lexical index
//! (`formats::lexical`). The query is analyzed exactly as the chunks were
//! (by the analyzer the bundle's manifest names), each distinct term scores
//! the chunks that contain it, and the best `n` that pass the filter come
//! back.

use std::collections::BTreeMap;

use shelf_formats::lexical::{Analyzer, LexicalIndex};

/// Term-frequency saturation.
pub const K1: f32 = 1.2;
/// Length normalisation.
pub const B: f32 = 0.75;
/// Query-term-frequency saturation: a term an issue text repeats counts
/// more, but not without bound.
pub const K3: f32 = 8.0;

/// The distinct terms of a query with their counts, in a fixed order.
pub fn query_terms(analyzer: Analyzer, query: &str) -> BTreeMap<String, u32> {
    let mut terms = BTreeMap::new();
    analyzer.analyze(query, |t| *terms.entry(t.to_string()).or_insert(0) += 1);
    terms
}

/// Document frequencies of a query's terms over several lexical indexes
/// (the bundles of several repositories searched as one collection), so
/// BM25 scores from different bundles weigh a term alike and compare.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collection {
    /// Documents in all the indexes.
    pub docs: usize,
    /// Per query term (as each index's analyzer emits it), documents with it.
    pub df: BTreeMap<String, usize>,
}

impl Collection {
    /// The statistics of `query`'s terms over `indexes`.
    pub fn of(indexes: &[(LexicalIndex<'_>, Analyzer)], query: &str) -> Self {
        let terms: Vec<(LexicalIndex<'_>, Vec<String>)> = indexes
            .iter()
            .map(|(ix, analyzer)| (*ix, query_terms(*analyzer, query).into_keys().collect()))
            .collect();
        Self::of_terms(&terms)
    }

    /// The statistics of each index's query terms over all of them.
    pub fn of_terms(indexes: &[(LexicalIndex<'_>, Vec<String>)]) -> Self {
        let mut c = Collection::default();
        for (ix, terms) in indexes {
            c.docs += ix.doc_count();
            for term in terms.iter().cloned() {
                let n = ix.lookup(&term).map_or(0, |p| p.len());
                *c.df.entry(term).or_insert(0) += n;
            }
        }
        c
    }
}

/// What a lexical search looks for.
#[derive(Debug, Clone, Copy)]
pub enum Query<'a> {
    /// Text, analyzed as the index's chunks were; each term weighs 1.
    Text(Analyzer, &'a str),
    /// Terms analyzed and weighed already, each `(term, count in the
    /// query, weight)`: a term's BM25 contribution is multiplied by its
    /// weight (`query.rs`: `QueryTuning` can weigh the query's code terms
    /// more; by default they weigh as prose).
    Terms(&'a [(String, u32, f32)]),
}

/// The `n` best documents for `query` among those `accept` passes, best
/// first, with their BM25 scores (ties by document order); each term's
/// rarity from `collection` when given (several bundles searched as one),
/// else from this index alone. The one lexical entry point.
pub fn search(
    index: &LexicalIndex<'_>,
    query: Query<'_>,
    n: usize,
    accept: impl Fn(u32) -> bool,
    collection: Option<&Collection>,
) -> Vec<(u32, f32)> {
    let weighed;
    let terms = match query {
        Query::Text(analyzer, text) => {
            weighed = query_terms(analyzer, text)
                .into_iter()
                .map(|(t, n)| (t, n, 1.0))
                .collect::<Vec<_>>();
            &weighed[..]
        }
        Query::Terms(terms) => terms,
    };
    let docs = index.doc_count();
    if docs == 0 || n == 0 {
        return Vec::new();
    }
    let collection_docs = collection.map_or(docs, |c| c.docs.max(docs));
    let avg = index.average_length().max(1.0);
    let mut scores = vec![0f32; docs];
    let mut touched = Vec::new();
    for (term, qtf, boost) in terms {
        let Some(postings) = index.lookup(term) else {
            continue;
        };
        let df = collection
            .and_then(|c| c.df.get(term).copied())
            .unwrap_or(postings.len()) as f32;
        let idf = (1.0 + (collection_docs as f32 - df + 0.5) / (df + 0.5)).ln();
        let qtf = *qtf as f32;
        let weight = boost * idf * qtf * (K3 + 1.0) / (K3 + qtf);
        for (doc, tf) in postings.iter() {
            let Some(slot) = scores.get_mut(doc as usize) else {
                continue;
            };
            let tf = tf as f32;
            let norm = K1 * (1.0 - B + B * index.doc_len(doc as usize) as f32 / avg);
            if *slot == 0.0 {
                touched.push(doc);
            }
            *slot += weight * tf * (K1 + 1.0) / (tf + norm);
        }
    }
    let mut ranked: Vec<(u32, f32)> = touched
        .into_iter()
        .filter(|&d| accept(d))
        .map(|d| (d, scores[d as usize]))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > n {
        ranked.select_nth_unstable_by(n - 1, cmp);
        ranked.truncate(n);
    }
    ranked.sort_by(cmp);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelf_formats::lexical::LexicalIndexWriter;

    fn index() -> Vec<u8> {
        let mut w = LexicalIndexWriter::new();
        w.push_chunk("src/retry.rs", "fn retry_policy() { backoff(); }");
        w.push_chunk("src/cache.rs", "struct LruCache { entries: Vec<Entry> }");
        w.push_chunk(
            "docs/retry.md",
            "# Retries\n\nThe retry policy retries with exponential backoff.",
        );
        w.push_chunk(
            "src/http.rs",
            "fn send(request: Request) -> Response { retry_policy().run() }",
        );
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn ranks_by_bm25_and_filters() {
        let bytes = index();
        let ix = LexicalIndex::parse(&bytes).unwrap();
        let hits = search(
            &ix,
            Query::Text(Analyzer::CodeV1, "exponential backoff in the retry policy"),
            10,
            |_| true,
            None,
        );
        assert_eq!(hits[0].0, 2, "{hits:?}");
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(
            !hits.iter().any(|(d, _)| *d == 1),
            "the cache chunk shares no term"
        );
        let only_code = search(
            &ix,
            Query::Text(Analyzer::CodeV1, "retry policy"),
            10,
            |d| d != 2,
            None,
        );
        assert!(only_code.iter().all(|(d, _)| *d != 2));
        assert_eq!(
            search(
                &ix,
                Query::Text(Analyzer::CodeV1, "retry"),
                1,
                |_| true,
                None
            )
            .len(),
            1
        );
        assert!(
            search(
                &ix,
                Query::Text(Analyzer::CodeV1, "the of and"),
                10,
                |_| true,
                None
            )
            .is_empty()
        );
        assert!(search(&ix, Query::Text(Analyzer::CodeV1, ""), 10, |_| true, None).is_empty());
    }

    #[test]
    fn identifiers_match_their_parts_and_whole() {
        let bytes = index();
        let ix = LexicalIndex::parse(&bytes).unwrap();
        // The whole identifier is rarer than its parts: it ranks its chunks first.
        let hits = search(
            &ix,
            Query::Text(Analyzer::CodeV1, "LruCache"),
            10,
            |_| true,
            None,
        );
        assert_eq!(hits[0].0, 1);
        let hits = search(
            &ix,
            Query::Text(Analyzer::CodeV1, "retry_policy()"),
            10,
            |_| true,
            None,
        );
        assert!(hits[0].0 == 0 || hits[0].0 == 3, "{hits:?}");
    }
}
