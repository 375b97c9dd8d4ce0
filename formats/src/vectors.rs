//! The flat vector store, `vectors.bin` (format 1.3): every chunk's vector
//! as IEEE 754 half-precision floats, back to back, vector `i` for chunk
//! `i`. Searched exactly (every vector scored), so there is no graph to
//! rebuild when a commit changes a few chunks and nothing an approximate
//! walk could miss. Specified in docs/formats/bundle-v1.md.
//!
//! ```text
//! header (64 bytes, integers little-endian)
//!   0  magic "SHELFVF1"      8  version u32 = 1   12 reserved u32 = 0
//!   16 count u64             24 dimensions u64
//!   32 element u64 = 1 (binary16, little-endian)
//!   40 data_offset u64 = 64  48 data_len u64 = count x dimensions x 2
//!   56 reserved u64 = 0
//! data: count x dimensions binary16 values
//! ```
//!
//! Half precision keeps 11 significant bits: for the unit-length vectors
//! shelf stores, a cosine moves by about 1e-5, far below the gaps that
//! decide a ranking, at half the bytes of f32 and without the graph.

use std::io::{self, Write};

use crate::layout::{Fixed, header, write_header};

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFVF1";
/// Bytes of the header; the data starts here.
pub const HEADER_LEN: usize = 64;
/// The element kind of IEEE 754 binary16, little-endian (the only one).
pub const ELEMENT_F16: u64 = 1;

/// Why bytes are not a valid vector store.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("vectors.bin is invalid: {0}")]
pub struct VectorStoreError(String);

/// The half-precision bits of `x`, rounded to nearest, ties to even: the
/// one conversion every writer uses, so a vector embedded now and one
/// reused from an earlier bundle store the same bits.
pub fn to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// The value of half-precision bits.
pub fn from_f16_bits(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Writes `vectors` (each `dimensions` long) as a vector store.
pub fn write_to(vectors: &[&[f32]], dimensions: usize, mut out: impl Write) -> io::Result<()> {
    let data_len = (vectors.len() as u64) * (dimensions as u64) * 2;
    let mut head = write_header(
        MAGIC,
        &[
            vectors.len() as u64,
            dimensions as u64,
            ELEMENT_F16,
            HEADER_LEN as u64,
            data_len,
            0,
        ],
    );
    head.resize(HEADER_LEN, 0);
    out.write_all(&head)?;
    let mut row = Vec::with_capacity(dimensions * 2);
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != dimensions {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("vector {i} has {} dimensions, not {dimensions}", v.len()),
            ));
        }
        row.clear();
        for &x in *v {
            row.extend_from_slice(&to_f16_bits(x).to_le_bytes());
        }
        out.write_all(&row)?;
    }
    out.flush()
}

/// A read-only view over vector store bytes (typically a memory map).
#[derive(Debug, Clone, Copy)]
pub struct FlatVectors<'a> {
    data: &'a [u8],
    count: usize,
    dimensions: usize,
}

impl<'a> FlatVectors<'a> {
    /// Checks the header and that the data is exactly as long as it says:
    /// O(1). Every bit pattern is a half-precision value, so nothing else
    /// can be wrong with the data.
    pub fn open(bytes: &'a [u8]) -> Result<Self, VectorStoreError> {
        let bad = |why: String| VectorStoreError(why);
        let f = header::<6>(bytes, HEADER_LEN, MAGIC, "vector store").map_err(bad)?;
        let fit = |v: u64, what: &str| {
            usize::try_from(v).map_err(|_| bad(format!("{what} {v} does not fit in memory")))
        };
        let (count, dimensions) = (fit(f[0], "count")?, fit(f[1], "dimensions")?);
        if f[2] != ELEMENT_F16 {
            return Err(bad(format!(
                "element kind {} is not {ELEMENT_F16} (binary16)",
                f[2]
            )));
        }
        if dimensions == 0 {
            return Err(bad("dimensions is 0".into()));
        }
        let expected = count
            .checked_mul(dimensions)
            .and_then(|n| n.checked_mul(2))
            .ok_or_else(|| bad("count x dimensions overflows".into()))?;
        if f[3] != HEADER_LEN as u64 || fit(f[4], "data_len")? != expected {
            return Err(bad(format!(
                "the header says data at {} of {} bytes, {count} vectors of {dimensions} need {expected} at {HEADER_LEN}",
                f[3], f[4]
            )));
        }
        let data = Fixed(bytes).slice(HEADER_LEN, expected).ok_or_else(|| {
            bad(format!(
                "{} bytes is shorter than its {count} vectors",
                bytes.len()
            ))
        })?;
        if bytes.len() != HEADER_LEN + expected {
            return Err(bad(format!(
                "{} bytes after the vectors",
                bytes.len() - HEADER_LEN - expected
            )));
        }
        Ok(Self {
            data,
            count,
            dimensions,
        })
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

    /// All vectors' bytes, `dimensions x 2` per vector, for a scan.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Vector `i`'s bytes (binary16, little-endian), or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&'a [u8]> {
        let len = self.dimensions * 2;
        self.data.get(i.checked_mul(len)?..)?.get(..len)
    }

    /// Vector `i` as `f32`, or `None` past the end.
    pub fn vector(&self, i: usize) -> Option<Vec<f32>> {
        Some(
            self.row(i)?
                .chunks_exact(2)
                .map(|b| from_f16_bits(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(vectors: &[Vec<f32>], dims: usize) -> Vec<u8> {
        let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        write_to(&refs, dims, &mut out).unwrap();
        out
    }

    #[test]
    fn vectors_round_trip_through_half_precision() {
        let vs = vec![vec![0.5, -0.25, 1.0], vec![0.1, 0.2, -0.3]];
        let bytes = store(&vs, 3);
        assert_eq!(bytes.len(), HEADER_LEN + 2 * 3 * 2);
        let flat = FlatVectors::open(&bytes).unwrap();
        assert_eq!((flat.len(), flat.dimensions()), (2, 3));
        assert_eq!(flat.vector(0).unwrap(), vec![0.5, -0.25, 1.0]);
        for (a, b) in flat.vector(1).unwrap().iter().zip(&vs[1]) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        assert_eq!(flat.vector(2), None);
        // Storing a stored vector again gives the same bits.
        let again = store(&[flat.vector(1).unwrap()], 3);
        assert_eq!(&again[HEADER_LEN..], flat.row(1).unwrap());
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
        kind[32] = 2;
        assert!(err(&kind).contains("element kind 2"));
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(FlatVectors::open(&huge).is_err());
        assert!(err(b"SHELFCK1").contains("shorter than the header"));
        let mut zero = good;
        zero[24..32].copy_from_slice(&0u64.to_le_bytes());
        assert!(err(&zero).contains("dimensions is 0"));
    }

    #[test]
    fn a_vector_of_the_wrong_length_is_refused() {
        let v = [1.0f32, 2.0];
        let e = write_to(&[&v[..]], 3, Vec::new()).unwrap_err();
        assert!(e.to_string().contains("2 dimensions, not 3"));
    }
}
