//! Exact search over a bundle's flat vectors (`vectors.bin`: signed bytes
//! in blocks of 32, or half precision in 1.3 and 1.4 bundles): every
//! admitted vector is scored against every query window and the best `k`
//! are kept. There is no graph, so nothing an
//! approximate walk could miss, nothing to rebuild when a commit changes a
//! few chunks, and a filter costs no recall.
//!
//! The scan reads each vector once for all query windows (memory bandwidth
//! is the cost, not arithmetic, which is why the values are bytes) with an
//! AVX2/F16C/FMA kernel where the CPU has one, chosen once per scan (i8
//! rows four at a time, each row's arithmetic the one-row kernel's, so the
//! scores are the same bit for bit); elsewhere a portable loop gives the
//! same ranking.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use shelf_formats::vectors::{BLOCK, Element, FlatVectors, Row, from_f16_bits};

use crate::mapped::Hit;

/// Which vectors a scan scores.
#[derive(Clone, Copy)]
pub enum Admit<'a> {
    /// Every vector.
    All,
    /// These keys only (out-of-range keys are skipped).
    Keys(&'a [u64]),
    /// The keys the predicate accepts.
    Where(&'a dyn Fn(u64) -> bool),
}

/// The `k` vectors of `vectors` closest to any of `queries` by cosine (all
/// vectors are unit length, so the dot product), each scored by its best
/// query; best first, ties by key. Queries of the wrong length score
/// nothing.
pub fn top_k(
    vectors: &FlatVectors<'_>,
    queries: &[&[f32]],
    k: usize,
    admit: Admit<'_>,
) -> Vec<Hit> {
    let dims = vectors.dimensions();
    let queries: Vec<Query<'_>> = queries
        .iter()
        .filter(|q| q.len() == dims)
        .map(|q| Query::new(q))
        .collect();
    if k == 0 || queries.is_empty() {
        return Vec::new();
    }
    let mut best = Best::new(k);
    #[cfg(target_arch = "x86_64")]
    if vectors.element() == Element::I8Blocks && x86::has_i8_kernel() {
        let mut keys: Box<dyn Iterator<Item = usize> + '_> = match admit {
            Admit::All => Box::new(0..vectors.len()),
            Admit::Keys(keys) => Box::new(keys.iter().filter_map(|&k| usize::try_from(k).ok())),
            Admit::Where(keep) => Box::new((0..vectors.len()).filter(move |&i| keep(i as u64))),
        };
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { x86::scan_i8(vectors, &queries, &mut keys, &mut best) };
        return best.into_sorted();
    }
    let dot = kernel(vectors.element());
    let mut score = |key: usize| {
        if let Some(row) = vectors.row(key) {
            let s = queries
                .iter()
                .map(|q| dot(row, q))
                .fold(f32::NEG_INFINITY, f32::max);
            best.offer(key as u64, s);
        }
    };
    match admit {
        Admit::All => (0..vectors.len()).for_each(&mut score),
        Admit::Keys(keys) => keys
            .iter()
            .filter_map(|&k| usize::try_from(k).ok())
            .for_each(&mut score),
        Admit::Where(keep) => (0..vectors.len())
            .filter(|&i| keep(i as u64))
            .for_each(&mut score),
    }
    best.into_sorted()
}

/// A query as the kernels read it: its values, and for rows of bytes the
/// same values as 16-bit integers (`round(value x scale)`, the largest at
/// 32,767), so an i8 row is multiplied in integer lanes, 16 at a time.
struct Query<'a> {
    values: &'a [f32],
    fixed: Vec<i16>,
    scale: f32,
}

impl<'a> Query<'a> {
    fn new(values: &'a [f32]) -> Self {
        let max = values
            .iter()
            .filter(|x| x.is_finite())
            .fold(0f32, |a, x| a.max(x.abs()));
        let scale = if max > 0.0 { 32767.0 / max } else { 1.0 };
        let fixed = values
            .iter()
            .map(|&x| {
                if x.is_finite() {
                    (x * scale).round().clamp(-32767.0, 32767.0) as i16
                } else {
                    0
                }
            })
            .collect();
        Self {
            values,
            fixed,
            scale,
        }
    }
}

/// A dot product of a stored row with a query of the same length.
type Dot = fn(Row<'_>, &Query<'_>) -> f32;

/// The fastest kernel this CPU has for `element`, chosen once per scan.
fn kernel(element: Element) -> Dot {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            return match element {
                Element::F16 => x86::dot_f16,
                Element::I8Blocks => x86::dot_i8,
            };
        }
    }
    dot_portable
}

/// The reference kernel, and the one on CPUs without the x86 extensions.
fn dot_portable(row: Row<'_>, q: &Query<'_>) -> f32 {
    match row {
        Row::F16(bytes) => bytes
            .chunks_exact(2)
            .zip(q.values)
            .map(|(b, &x)| from_f16_bits(u16::from_le_bytes([b[0], b[1]])) * x)
            .sum(),
        Row::I8 { values, scales } => {
            let total: f32 = values
                .chunks(BLOCK)
                .zip(q.fixed.chunks(BLOCK))
                .zip(scales.chunks_exact(4))
                .map(|((block, q), m)| {
                    let m = f32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                    let sum: i32 = block
                        .iter()
                        .zip(q)
                        .map(|(&v, &x)| i32::from(v as i8) * i32::from(x))
                        .sum();
                    sum as f32 * m
                })
                .sum();
            total / 127.0 / q.scale
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use shelf_formats::vectors::{BLOCK, Row};

    use super::Query;

    /// Checks the lengths, then runs the half-precision vector kernel.
    pub(super) fn dot_f16(row: Row<'_>, query: &Query<'_>) -> f32 {
        let Row::F16(row) = row else {
            return super::dot_portable(row, query);
        };
        let q = query.values;
        let dims = q.len().min(row.len() / 2);
        // SAFETY: `kernel()` returns this function only when the CPU has
        // AVX2, FMA and F16C; `dims` values are in bounds of both slices.
        unsafe { f16_avx2(row.as_ptr(), q.as_ptr(), dims) }
    }

    /// Whether this CPU runs [`scan_i8`].
    pub(super) fn has_i8_kernel() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    /// Scores every row of `keys` against every query and offers each to
    /// `best`: the arithmetic of [`dot_i8`] row by row, so the same
    /// scores bit for bit, in one loop compiled for AVX2 (the kernel is
    /// inlined rather than called twice through pointers per row).
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2 and FMA ([`has_i8_kernel`]).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scan_i8(
        vectors: &shelf_formats::vectors::FlatVectors<'_>,
        queries: &[Query<'_>],
        keys: &mut dyn Iterator<Item = usize>,
        best: &mut super::Best,
    ) {
        // Rows four at a time share each block's query loads and keep
        // four rows' multiply-add chains in flight; each row's arithmetic
        // is the single-row kernel's.
        let mut batch: Vec<(usize, &[u8], &[u8])> = Vec::with_capacity(ROWS);
        let flush = |batch: &mut Vec<(usize, &[u8], &[u8])>, best: &mut super::Best| {
            let mut scores = [f32::NEG_INFINITY; ROWS];
            for query in queries {
                let q = &query.fixed;
                let got: [f32; ROWS] = if batch.len() == ROWS
                    && batch.iter().all(|(_, v, s)| {
                        v.len() == batch[0].1.len()
                            && s.len() >= q.len().min(v.len()).div_ceil(BLOCK) * 4
                    }) {
                    let dims = q.len().min(batch[0].1.len());
                    let values = std::array::from_fn(|r| batch[r].1.as_ptr());
                    let scales = std::array::from_fn(|r| batch[r].2.as_ptr());
                    // SAFETY: every row has `dims` values and a maximum
                    // per block of them (checked just above).
                    let totals = unsafe { i8_avx2_rows(values, scales, q.as_ptr(), dims) };
                    totals.map(|t| t / 127.0 / query.scale)
                } else {
                    std::array::from_fn(|r| match batch.get(r) {
                        Some(&(_, values, scales)) => dot_i8(Row::I8 { values, scales }, query),
                        None => f32::NEG_INFINITY,
                    })
                };
                for (s, g) in scores.iter_mut().zip(got) {
                    *s = s.max(g);
                }
            }
            for (r, &(key, _, _)) in batch.iter().enumerate() {
                best.offer(key as u64, scores[r]);
            }
            batch.clear();
        };
        for key in keys {
            let Some(Row::I8 { values, scales }) = vectors.row(key) else {
                continue;
            };
            batch.push((key, values, scales));
            if batch.len() == ROWS {
                flush(&mut batch, best);
            }
        }
        if !batch.is_empty() {
            flush(&mut batch, best);
        }
    }

    /// Rows [`scan_i8`] scores at once.
    const ROWS: usize = 4;

    /// The i8 kernel for `R` rows at once ([`i8_avx2`] is it for one,
    /// [`scan_i8`] runs it for [`ROWS`]): the rows share each block's query
    /// loads, and each row's operations are in the same order whatever `R`,
    /// so each total is the same bit for bit.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2 and FMA; every row must have `dims` values
    /// and a maximum for each block of them, and `q` `dims` values.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn i8_avx2_rows<const R: usize>(
        values: [*const u8; R],
        scales: [*const u8; R],
        q: *const i16,
        dims: usize,
    ) -> [f32; R] {
        // Two accumulators per row: consecutive blocks' FMAs do not wait
        // on each other.
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut block = 0;
        // SAFETY (all loads): each full block's 32 values, 32 query values
        // and its maximum are in bounds, for every row (the caller's
        // guarantee).
        unsafe {
            while (block + 1) * BLOCK <= dims {
                let at = block * BLOCK;
                let q_low = _mm256_loadu_si256(q.add(at).cast());
                let q_high = _mm256_loadu_si256(q.add(at + 16).cast());
                for r in 0..R {
                    let m = f32::from_le_bytes(*scales[r].add(block * 4).cast::<[u8; 4]>());
                    let low = _mm256_cvtepi8_epi16(_mm_loadu_si128(values[r].add(at).cast()));
                    let high = _mm256_cvtepi8_epi16(_mm_loadu_si128(values[r].add(at + 16).cast()));
                    // Pairs of 8-bit x 16-bit products fit an i32 lane with room.
                    let sum = _mm256_add_epi32(
                        _mm256_madd_epi16(low, q_low),
                        _mm256_madd_epi16(high, q_high),
                    );
                    let a = &mut acc[r][block % 2];
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(m), *a);
                }
                block += 1;
            }
            let at = block * BLOCK;
            std::array::from_fn(|r| {
                let [a0, a1] = acc[r];
                let mut total = sum8([a0, a1, _mm256_setzero_ps(), _mm256_setzero_ps()]);
                if at < dims {
                    let m = f32::from_le_bytes(*scales[r].add(block * 4).cast::<[u8; 4]>());
                    let mut sum = 0i32;
                    for i in at..dims {
                        sum += i32::from(*values[r].add(i) as i8) * i32::from(*q.add(i));
                    }
                    total += sum as f32 * m;
                }
                total
            })
        }
    }

    /// Checks the lengths, then runs the i8 vector kernel.
    pub(super) fn dot_i8(row: Row<'_>, query: &Query<'_>) -> f32 {
        let Row::I8 { values, scales } = row else {
            return super::dot_portable(row, query);
        };
        let q = &query.fixed;
        let dims = q.len().min(values.len());
        if scales.len() < dims.div_ceil(BLOCK) * 4 {
            return f32::NAN;
        }
        // SAFETY: as for `dot_f16`; `scales` holds a maximum for every
        // block of `dims` values (checked above).
        let total = unsafe { i8_avx2(values.as_ptr(), scales.as_ptr(), q.as_ptr(), dims) };
        total / 127.0 / query.scale
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum8(acc: [__m256; 4]) -> f32 {
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
        let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let one = _mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1));
        _mm_cvtss_f32(one)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16_avx2(row: *const u8, q: *const f32, dims: usize) -> f32 {
        // Four accumulators keep four FMA chains in flight.
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): `i + 8 <= dims` before each 8-wide load, and
        // the caller guarantees `dims` values behind both pointers.
        unsafe {
            while i + 32 <= dims {
                for (j, a) in acc.iter_mut().enumerate() {
                    let at = i + 8 * j;
                    let h = _mm_loadu_si128(row.add(at * 2).cast());
                    *a = _mm256_fmadd_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(q.add(at)), *a);
                }
                i += 32;
            }
            while i + 8 <= dims {
                let h = _mm_loadu_si128(row.add(i * 2).cast());
                acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(q.add(i)), acc[0]);
                i += 8;
            }
            let mut total = sum8(acc);
            while i < dims {
                let bits = u16::from_le_bytes([*row.add(i * 2), *row.add(i * 2 + 1)]);
                total += shelf_formats::vectors::from_f16_bits(bits) * *q.add(i);
                i += 1;
            }
            total
        }
    }

    /// The sum over blocks of (the block's integer dot product x its
    /// maximum), still to be divided by 127 and the query's scale.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn i8_avx2(values: *const u8, scales: *const u8, q: *const i16, dims: usize) -> f32 {
        // SAFETY: the caller's guarantees, for its one row.
        let [total] = unsafe { i8_avx2_rows([values], [scales], q, dims) };
        total
    }
}

/// One candidate: ordered so the heap's top is the one to drop first (the
/// lowest score; among equal scores the highest key).
#[derive(Clone, Copy)]
struct Scored {
    score: f32,
    key: u64,
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, the worst must be on top.
        other
            .score
            .total_cmp(&self.score)
            .then(self.key.cmp(&other.key))
    }
}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}

/// The best `k` seen so far.
struct Best {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl Best {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    fn offer(&mut self, key: u64, score: f32) {
        // A vector changed into NaNs must not rank first.
        let score = if score.is_nan() {
            f32::NEG_INFINITY
        } else {
            score
        };
        let candidate = Scored { score, key };
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if let Some(worst) = self.heap.peek()
            && candidate < *worst
        {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    fn into_sorted(self) -> Vec<Hit> {
        // Ascending in the reversed order is best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|s| Hit {
                key: s.key,
                score: s.score,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_as(vectors: &[Vec<f32>], element: Element) -> Vec<u8> {
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        shelf_formats::vectors::write_to(&refs, vectors[0].len(), element, &mut out).unwrap();
        out
    }

    fn store(vectors: &[Vec<f32>]) -> Vec<u8> {
        store_as(vectors, Element::I8Blocks)
    }

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    /// Every dimension count around the kernel's 8- and 32-wide steps.
    #[test]
    fn the_vector_kernel_agrees_with_the_portable_one() {
        for element in [Element::F16, Element::I8Blocks] {
            for dims in [1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 384, 385] {
                let v = unit(dims as u64, dims);
                let q = unit(dims as u64 + 1000, dims);
                let bytes = store_as(std::slice::from_ref(&v), element);
                let flat = FlatVectors::open(&bytes).unwrap();
                let row = flat.row(0).unwrap();
                let query = Query::new(&q);
                let (fast, slow) = (kernel(element)(row, &query), dot_portable(row, &query));
                assert!(
                    (fast - slow).abs() < 1e-5,
                    "{element:?} {dims}: {fast} vs {slow}"
                );
                // And both are the dot product of the stored values.
                let stored: f32 = flat
                    .vector(0)
                    .unwrap()
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| a * b)
                    .sum();
                assert!(
                    (slow - stored).abs() < 1e-4,
                    "{element:?} {dims}: {slow} vs {stored}"
                );
            }
        }
    }

    #[test]
    fn the_scan_finds_the_exact_top_k_best_first() {
        for element in [Element::F16, Element::I8Blocks] {
            scan_finds_the_exact_top_k(element);
        }
    }

    fn scan_finds_the_exact_top_k(element: Element) {
        let vs: Vec<Vec<f32>> = (0..500).map(|i| unit(i, 48)).collect();
        let bytes = store_as(&vs, element);
        let flat = FlatVectors::open(&bytes).unwrap();
        let q = unit(9999, 48);
        let hits = top_k(&flat, &[&q], 10, Admit::All);
        let mut brute: Vec<(f32, u64)> = (0..500)
            .map(|i| {
                (
                    kernel(element)(flat.row(i).unwrap(), &Query::new(&q)),
                    i as u64,
                )
            })
            .collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let keys: Vec<u64> = hits.iter().map(|h| h.key).collect();
        let want: Vec<u64> = brute[..10].iter().map(|b| b.1).collect();
        assert_eq!(keys, want);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // A vector's own query finds it first.
        let own = top_k(&flat, &[&vs[123]], 1, Admit::All);
        assert_eq!(own[0].key, 123);
        assert!(own[0].score > 0.999);
    }

    #[test]
    fn filters_and_several_queries_score_only_what_they_admit() {
        let vs: Vec<Vec<f32>> = (0..100).map(|i| unit(i, 16)).collect();
        let bytes = store(&vs);
        let flat = FlatVectors::open(&bytes).unwrap();
        let even = |k: u64| k.is_multiple_of(2);
        let hits = top_k(&flat, &[&vs[3], &vs[8]], 100, Admit::Where(&even));
        assert_eq!(hits.len(), 50);
        assert!(hits.iter().all(|h| h.key % 2 == 0));
        assert_eq!(hits[0].key, 8);
        let hits = top_k(&flat, &[&vs[3], &vs[8]], 2, Admit::All);
        let mut keys: Vec<u64> = hits.iter().map(|h| h.key).collect();
        keys.sort();
        assert_eq!(keys, [3, 8]);
        let hits = top_k(&flat, &[&vs[5]], 10, Admit::Keys(&[5, 7, 1_000_000]));
        assert_eq!(hits.iter().map(|h| h.key).collect::<Vec<_>>()[0], 5);
        assert_eq!(hits.len(), 2);
        assert!(top_k(&flat, &[&[1.0, 0.0][..]], 5, Admit::All).is_empty());
        assert!(top_k(&flat, &[&vs[0]], 0, Admit::All).is_empty());
    }

    /// The scan's batched kernel against the one-row kernel every
    /// vector through: the same scores bit for bit and the same order, for
    /// row counts that leave a partial batch, dimensions with a partial
    /// block, several query windows and every kind of admission.
    #[test]
    fn the_batched_scan_scores_exactly_as_the_one_row_kernel() {
        for (n, dims) in [(1003, 384), (37, 100), (3, 40)] {
            let vs: Vec<Vec<f32>> = (0..n).map(|i| unit(i as u64 + 7, dims)).collect();
            let bytes = store(&vs);
            let fv = FlatVectors::open(&bytes).unwrap();
            let (q1, q2) = (unit(100_001, dims), unit(100_002, dims));
            let queries = [q1.as_slice(), q2.as_slice()];
            let windows: Vec<Query<'_>> = queries.iter().map(|q| Query::new(q)).collect();
            let dot = kernel(Element::I8Blocks);
            let odd: Vec<u64> = (0..n as u64)
                .filter(|k| k % 3 != 1)
                .chain([n as u64 + 5])
                .collect();
            let keep = |k: u64| k % 5 != 2;
            for admit in [Admit::All, Admit::Keys(&odd), Admit::Where(&keep)] {
                let admitted: Vec<usize> = (0..n)
                    .filter(|&i| match admit {
                        Admit::All => true,
                        Admit::Keys(keys) => keys.contains(&(i as u64)),
                        Admit::Where(f) => f(i as u64),
                    })
                    .collect();
                for k in [1, 10, n] {
                    let mut reference = Best::new(k);
                    for &i in &admitted {
                        let row = fv.row(i).unwrap();
                        let s = windows
                            .iter()
                            .map(|q| dot(row, q))
                            .fold(f32::NEG_INFINITY, f32::max);
                        reference.offer(i as u64, s);
                    }
                    let want: Vec<(u64, u32)> = reference
                        .into_sorted()
                        .iter()
                        .map(|h| (h.key, h.score.to_bits()))
                        .collect();
                    let got: Vec<(u64, u32)> = top_k(&fv, &queries, k, admit)
                        .iter()
                        .map(|h| (h.key, h.score.to_bits()))
                        .collect();
                    assert_eq!(got, want, "{n} vectors of {dims}, k {k}");
                }
            }
        }
    }

    #[test]
    fn nan_vectors_rank_last() {
        let mut vs: Vec<Vec<f32>> = (0..4).map(|i| unit(i, 8)).collect();
        vs[2] = vec![f32::NAN; 8];
        let bytes = store_as(&vs, Element::F16);
        let flat = FlatVectors::open(&bytes).unwrap();
        let hits = top_k(&flat, &[&vs[0]], 4, Admit::All);
        assert_eq!(hits.last().unwrap().key, 2);
    }
}
