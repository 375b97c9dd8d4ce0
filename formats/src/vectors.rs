//! The flat vector store, `vectors.bin`: every chunk's vector, back to
//! back, vector `i` for chunk `i`, searched exactly (every vector scored),
//! so there is no graph to rebuild when a commit changes a few chunks and
//! nothing an approximate walk could miss. Two element kinds:
//!
//! - **i8 in blocks of 32** (format 1.5, written today): each value as a
//!   signed byte, each block of 32 values of a vector with the largest
//!   magnitude in the block as an `f32`; value `q` of a block with
//!   maximum `m` stands for `q / 127 x m`. A vector takes 384 + 48 bytes
//!   at 384 dimensions, 56% of half precision, and a scan reads that much
//!   less (the scan is bound by memory bandwidth);
//! - **IEEE 754 half precision** (formats 1.3 and 1.4, still read).
//!
//! ```text
//! header (64 bytes, integers little-endian)
//!   0  magic "SHELFVF1"      8  version u32 = 1   12 reserved u32 = 0
//!   16 count u64             24 dimensions u64
//!   32 element u64: 1 = binary16, 2 = i8 in blocks of 32
//!   40 data_offset u64 = 64
//!   48 data_len u64 = count x dimensions x (2 for binary16, 1 for i8)
//!   56 scales_offset u64: 0 for binary16; for i8 data_offset + data_len
//!      rounded up to 4
//! data: count x dimensions values
//! scales (i8 only): count x ceil(dimensions / 32) f32, vector i's blocks
//!      in order
//! ```
//!
//! Values are rounded to half precision before they are encoded as i8, and
//! the encoding is its own fixed point: decoding a stored vector and
//! encoding it again gives the same bytes (the block maximum decodes to
//! exactly `m`, every other value to within a few hundredths of a step),
//! so a vector reused from an earlier bundle (of either kind) and one
//! embedded afresh or taken from the embedding cache store the same
//! bytes.

use std::io::{self, Write};

use crate::layout::{Fixed, header, write_header};

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFVF1";
/// Bytes of the header; the data starts here.
pub const HEADER_LEN: usize = 64;
/// Values per scale block of the i8 element kind.
pub const BLOCK: usize = 32;

/// How a store keeps each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// IEEE 754 binary16, little-endian (formats 1.3 and 1.4).
    F16,
    /// Signed bytes with one `f32` maximum per block of [`BLOCK`] values
    /// (format 1.5).
    I8Blocks,
}

impl Element {
    /// The code in the header's `element` field.
    pub fn code(self) -> u64 {
        match self {
            Element::F16 => 1,
            Element::I8Blocks => 2,
        }
    }

    /// The name a manifest gives it (`settings.vector_quantization`).
    pub const fn name(self) -> &'static str {
        match self {
            Element::F16 => "f16",
            Element::I8Blocks => "i8/32",
        }
    }

    /// The element a manifest's `settings.vector_quantization` names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Element::I8Blocks, Element::F16]
            .into_iter()
            .find(|e| e.name() == name)
    }

    fn from_code(code: u64) -> Option<Self> {
        [Element::F16, Element::I8Blocks]
            .into_iter()
            .find(|e| e.code() == code)
    }

    fn value_bytes(self) -> usize {
        match self {
            Element::F16 => 2,
            Element::I8Blocks => 1,
        }
    }
}

/// Why bytes are not a valid vector store.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("vectors.bin is invalid: {0}")]
pub struct VectorStoreError(String);

/// The half-precision bits of `x`, rounded to nearest, ties to even.
pub fn to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// The value of half-precision bits.
pub fn from_f16_bits(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Scale blocks of a vector of `dimensions` values.
pub fn blocks(dimensions: usize) -> usize {
    dimensions.div_ceil(BLOCK)
}

/// One block's values as signed bytes against its largest magnitude `m`
/// (non-finite values are stored as 0 and do not count towards `m`).
fn encode_block(values: &[f32], out: &mut Vec<u8>) -> f32 {
    let m = values
        .iter()
        .filter(|x| x.is_finite())
        .fold(0f32, |a, x| a.max(x.abs()));
    for &x in values {
        let q = if m > 0.0 && x.is_finite() {
            (x / m * 127.0).round().clamp(-127.0, 127.0) as i8
        } else {
            0
        };
        out.push(q as u8);
    }
    m
}

/// The value byte `q` of a block with maximum `m` stands for.
pub fn decode_i8(q: i8, m: f32) -> f32 {
    (f32::from(q) / 127.0) * m
}

fn align4(n: usize) -> usize {
    n.next_multiple_of(4)
}

/// Writes `vectors` (each `dimensions` long) as a vector store of
/// `element` values.
pub fn write_to(
    vectors: &[&[f32]],
    dimensions: usize,
    element: Element,
    mut out: impl Write,
) -> io::Result<()> {
    let data_len = vectors.len() * dimensions * element.value_bytes();
    let scales_offset = match element {
        Element::F16 => 0,
        Element::I8Blocks => align4(HEADER_LEN + data_len),
    };
    let mut head = write_header(
        MAGIC,
        &[
            vectors.len() as u64,
            dimensions as u64,
            element.code(),
            HEADER_LEN as u64,
            data_len as u64,
            scales_offset as u64,
        ],
    );
    head.resize(HEADER_LEN, 0);
    out.write_all(&head)?;
    let mut row = Vec::with_capacity(dimensions * 2);
    let mut scales = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != dimensions {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("vector {i} has {} dimensions, not {dimensions}", v.len()),
            ));
        }
        row.clear();
        match element {
            Element::F16 => {
                for &x in *v {
                    row.extend_from_slice(&to_f16_bits(x).to_le_bytes());
                }
            }
            Element::I8Blocks => {
                // Through half precision first: a vector reused from a
                // 1.3 or 1.4 bundle (stored as f16) and the same vector
                // embedded afresh then encode to the same bytes.
                let halved: Vec<f32> = v.iter().map(|&x| from_f16_bits(to_f16_bits(x))).collect();
                for block in halved.chunks(BLOCK) {
                    let m = encode_block(block, &mut row);
                    scales.extend_from_slice(&m.to_le_bytes());
                }
            }
        }
        out.write_all(&row)?;
    }
    if element == Element::I8Blocks {
        out.write_all(&vec![0; scales_offset - HEADER_LEN - data_len])?;
        out.write_all(&scales)?;
    }
    out.flush()
}

/// One stored vector's bytes, as a scan reads them.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// `dimensions x 2` bytes of binary16, little-endian.
    F16(&'a [u8]),
    /// `dimensions` signed bytes and `blocks(dimensions) x 4` bytes of
    /// `f32` block maxima, little-endian.
    I8 {
        /// The values.
        values: &'a [u8],
        /// The block maxima.
        scales: &'a [u8],
    },
}

impl Row<'_> {
    /// The vector as `f32`.
    pub fn to_f32(self) -> Vec<f32> {
        match self {
            Row::F16(bytes) => bytes
                .chunks_exact(2)
                .map(|b| from_f16_bits(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Row::I8 { values, scales } => values
                .chunks(BLOCK)
                .zip(scales.chunks_exact(4))
                .flat_map(|(block, m)| {
                    let m = f32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                    block.iter().map(move |&q| decode_i8(q as i8, m))
                })
                .collect(),
        }
    }
}

/// A read-only view over vector store bytes (typically a memory map).
#[derive(Debug, Clone, Copy)]
pub struct FlatVectors<'a> {
    data: &'a [u8],
    scales: &'a [u8],
    count: usize,
    dimensions: usize,
    element: Element,
}

impl<'a> FlatVectors<'a> {
    /// Checks the header and that the data is exactly as long as it says:
    /// O(1). Every bit pattern is a value, so nothing else can be wrong
    /// with the data.
    pub fn open(bytes: &'a [u8]) -> Result<Self, VectorStoreError> {
        let bad = |why: String| VectorStoreError(why);
        let f = header::<6>(bytes, HEADER_LEN, MAGIC, "vector store").map_err(bad)?;
        let fit = |v: u64, what: &str| {
            usize::try_from(v).map_err(|_| bad(format!("{what} {v} does not fit in memory")))
        };
        let (count, dimensions) = (fit(f[0], "count")?, fit(f[1], "dimensions")?);
        let element = Element::from_code(f[2]).ok_or_else(|| {
            bad(format!(
                "element kind {} is not 1 (binary16) or 2 (i8 in blocks of {BLOCK})",
                f[2]
            ))
        })?;
        if dimensions == 0 {
            return Err(bad("dimensions is 0".into()));
        }
        let expected = count
            .checked_mul(dimensions)
            .and_then(|n| n.checked_mul(element.value_bytes()))
            .ok_or_else(|| bad("count x dimensions overflows".into()))?;
        if f[3] != HEADER_LEN as u64 || fit(f[4], "data_len")? != expected {
            return Err(bad(format!(
                "the header says data at {} of {} bytes, {count} vectors of {dimensions} need {expected} at {HEADER_LEN}",
                f[3], f[4]
            )));
        }
        let (scales_at, scales_len) = match element {
            Element::F16 => (0, 0),
            Element::I8Blocks => (
                align4(HEADER_LEN + expected),
                count
                    .checked_mul(blocks(dimensions) * 4)
                    .ok_or_else(|| bad("count x blocks overflows".into()))?,
            ),
        };
        if f[5] != scales_at as u64 {
            return Err(bad(format!(
                "the header says scales at {}, not {scales_at}",
                f[5]
            )));
        }
        let fixed = Fixed(bytes);
        let data = fixed.slice(HEADER_LEN, expected).ok_or_else(|| {
            bad(format!(
                "{} bytes is shorter than its {count} vectors",
                bytes.len()
            ))
        })?;
        let end = match element {
            Element::F16 => HEADER_LEN + expected,
            Element::I8Blocks => scales_at + scales_len,
        };
        let scales = match element {
            Element::F16 => &[][..],
            Element::I8Blocks => fixed.slice(scales_at, scales_len).ok_or_else(|| {
                bad(format!(
                    "{} bytes is shorter than its {count} vectors' scales",
                    bytes.len()
                ))
            })?,
        };
        if bytes.len() != end {
            return Err(bad(format!(
                "{} bytes after the vectors",
                bytes.len() - end
            )));
        }
        Ok(Self {
            data,
            scales,
            count,
            dimensions,
            element,
        })
    }

    /// [`FlatVectors::open`], also refusing a store whose element kind is
    /// not the one its manifest names (`Manifest::vector_element`).
    pub fn open_as(bytes: &'a [u8], named: Option<Element>) -> Result<Self, VectorStoreError> {
        let flat = Self::open(bytes)?;
        if named != Some(flat.element) {
            return Err(VectorStoreError(format!(
                "it holds {} values but the manifest names {}",
                flat.element.name(),
                named.map_or("no flat vector kind", Element::name)
            )));
        }
        Ok(flat)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Values per vector.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// How the values are stored.
    pub fn element(&self) -> Element {
        self.element
    }

    /// Vector `i`'s bytes, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<Row<'a>> {
        let len = self.dimensions * self.element.value_bytes();
        let values = self.data.get(i.checked_mul(len)?..)?.get(..len)?;
        Some(match self.element {
            Element::F16 => Row::F16(values),
            Element::I8Blocks => {
                let s = blocks(self.dimensions) * 4;
                Row::I8 {
                    values,
                    scales: self.scales.get(i.checked_mul(s)?..)?.get(..s)?,
                }
            }
        })
    }

    /// Vector `i` as `f32`, or `None` past the end.
    pub fn vector(&self, i: usize) -> Option<Vec<f32>> {
        Some(self.row(i)?.to_f32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_as(vectors: &[Vec<f32>], dims: usize, element: Element) -> Vec<u8> {
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        write_to(&refs, dims, element, &mut out).unwrap();
        out
    }

    fn store(vectors: &[Vec<f32>], dims: usize) -> Vec<u8> {
        store_as(vectors, dims, Element::F16)
    }

    fn noise(seed: u64, dims: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 20001) as f32 / 100_000.0 - 0.1
            })
            .collect()
    }

    #[test]
    fn vectors_round_trip_through_half_precision() {
        let vs = vec![vec![0.5, -0.25, 1.0], vec![0.1, 0.2, -0.3]];
        let bytes = store(&vs, 3);
        assert_eq!(bytes.len(), HEADER_LEN + 2 * 3 * 2);
        let flat = FlatVectors::open(&bytes).unwrap();
        assert_eq!((flat.len(), flat.dimensions()), (2, 3));
        assert_eq!(flat.element(), Element::F16);
        assert_eq!(flat.vector(0).unwrap(), vec![0.5, -0.25, 1.0]);
        for (a, b) in flat.vector(1).unwrap().iter().zip(&vs[1]) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        assert_eq!(flat.vector(2), None);
        // Storing a stored vector again gives the same bits.
        let again = store(&[flat.vector(1).unwrap()], 3);
        let Some(Row::F16(row)) = flat.row(1) else {
            panic!("not f16")
        };
        assert_eq!(&again[HEADER_LEN..], row);
    }

    #[test]
    fn i8_blocks_keep_each_value_within_half_a_step_of_its_block() {
        // 70 dimensions: two full blocks and a short one.
        let vs: Vec<Vec<f32>> = (0..3).map(|i| noise(i, 70)).collect();
        let bytes = store_as(&vs, 70, Element::I8Blocks);
        let flat = FlatVectors::open(&bytes).unwrap();
        assert_eq!(flat.element(), Element::I8Blocks);
        assert_eq!(bytes.len(), align4(HEADER_LEN + 3 * 70) + 3 * 3 * 4);
        for (i, v) in vs.iter().enumerate() {
            let back = flat.vector(i).unwrap();
            for (block, got) in v.chunks(BLOCK).zip(back.chunks(BLOCK)) {
                let halved: Vec<f32> = block
                    .iter()
                    .map(|&x| from_f16_bits(to_f16_bits(x)))
                    .collect();
                let m = halved.iter().fold(0f32, |a, x| a.max(x.abs()));
                let step = m / 127.0;
                for (a, b) in block.iter().zip(got) {
                    assert!((a - b).abs() <= step / 2.0 + 1e-4, "{a} vs {b}");
                }
                // The block's largest magnitude comes back exactly.
                assert!(got.iter().any(|x| x.abs() == m));
            }
        }
        assert!(flat.vector(3).is_none());
    }

    /// A vector reused from an earlier bundle is decoded to f32 and
    /// encoded again: the bytes must not drift, or an incremental build
    /// would differ from a cold one.
    #[test]
    fn i8_blocks_encode_their_own_decoding_to_the_same_bytes() {
        let vs: Vec<Vec<f32>> = (0..200).map(|i| noise(i, 384)).collect();
        let bytes = store_as(&vs, 384, Element::I8Blocks);
        let flat = FlatVectors::open(&bytes).unwrap();
        let decoded: Vec<Vec<f32>> = (0..200).map(|i| flat.vector(i).unwrap()).collect();
        assert_eq!(store_as(&decoded, 384, Element::I8Blocks), bytes);
        let twice: Vec<Vec<f32>> = {
            let b = store_as(&decoded, 384, Element::I8Blocks);
            let f = FlatVectors::open(&b).unwrap();
            (0..200).map(|i| f.vector(i).unwrap()).collect()
        };
        assert_eq!(twice, decoded);
    }

    /// A 1.3 or 1.4 bundle given as `--previous` hands over f16 vectors:
    /// encoded as i8 they must be the bytes the original vectors encode to.
    #[test]
    fn f16_vectors_encode_to_the_i8_bytes_of_their_originals() {
        let vs: Vec<Vec<f32>> = (0..200).map(|i| noise(i + 500, 384)).collect();
        let f16 = store_as(&vs, 384, Element::F16);
        let flat = FlatVectors::open(&f16).unwrap();
        let from_f16: Vec<Vec<f32>> = (0..200).map(|i| flat.vector(i).unwrap()).collect();
        assert_eq!(
            store_as(&from_f16, 384, Element::I8Blocks),
            store_as(&vs, 384, Element::I8Blocks)
        );
    }

    #[test]
    fn zero_and_non_finite_values_encode_as_zero() {
        let vs = vec![vec![0.0; 4], vec![f32::NAN, 1.0, f32::INFINITY, -0.5]];
        let bytes = store_as(&vs, 4, Element::I8Blocks);
        let flat = FlatVectors::open(&bytes).unwrap();
        assert_eq!(flat.vector(0).unwrap(), vec![0.0; 4]);
        let back = flat.vector(1).unwrap();
        assert_eq!((back[0], back[1], back[2]), (0.0, 1.0, 0.0));
        assert!((back[3] + 0.5).abs() < 0.01);
    }

    #[test]
    fn element_names_are_the_manifest_names() {
        for e in [Element::F16, Element::I8Blocks] {
            assert_eq!(Element::from_name(e.name()), Some(e));
            assert_eq!(Element::from_code(e.code()), Some(e));
        }
        assert_eq!(Element::from_name("f32"), None);
    }

    #[test]
    fn damaged_stores_are_refused_naming_the_problem() {
        let good = store(&[vec![1.0, 0.0], vec![0.0, 1.0]], 2);
        let err = |b: &[u8]| FlatVectors::open(b).unwrap_err().to_string();
        assert!(err(&good[..good.len() - 1]).contains("shorter"));
        let mut longer = good.clone();
        longer.push(0);
        assert!(err(&longer).contains("after the vectors"));
        let mut kind = good.clone();
        kind[32] = 3;
        assert!(err(&kind).contains("element kind 3"));
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(FlatVectors::open(&huge).is_err());
        assert!(err(b"SHELFCK1").contains("shorter than the header"));
        let mut zero = good;
        zero[24..32].copy_from_slice(&0u64.to_le_bytes());
        assert!(err(&zero).contains("dimensions is 0"));
        let i8s = store_as(&[vec![1.0, 0.0], vec![0.0, 1.0]], 2, Element::I8Blocks);
        assert!(err(&i8s[..i8s.len() - 1]).contains("scales"));
        assert!(FlatVectors::open_as(&i8s, Some(Element::I8Blocks)).is_ok());
        let e = FlatVectors::open_as(&i8s, Some(Element::F16)).unwrap_err();
        assert!(
            e.to_string()
                .contains("holds i8/32 values but the manifest names f16")
        );
        let mut moved = i8s.clone();
        moved[56] = 0;
        assert!(err(&moved).contains("scales at"));
    }

    #[test]
    fn a_vector_of_the_wrong_length_is_refused() {
        let v = [1.0f32, 2.0];
        for element in [Element::F16, Element::I8Blocks] {
            let e = write_to(&[&v[..]], 3, element, Vec::new()).unwrap_err();
            assert!(e.to_string().contains("2 dimensions, not 3"));
        }
    }
}
