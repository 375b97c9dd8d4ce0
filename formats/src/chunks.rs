//! The chunk store, `chunks.bin`: every chunk's text, file path, line range
//! and content id, laid out so a reader can answer "chunk i" from a memory
//! map in O(1) without parsing the whole file. Chunk `i` is the vector with
//! key `i` in `vectors.usearch`. Specified in docs/formats/bundle-v1.md.
//!
//! ```text
//! header (64 bytes, integers little-endian)
//!   0  magic "SHELFCK1"      8  version u32 = 1   12 reserved u32 = 0
//!   16 chunk_count u64       24 path_count u64
//!   32 records_offset u64    40 paths_offset u64
//!   48 text_offset u64       56 text_len u64
//! records: chunk_count x 64 bytes
//!   content_id [32] | text_start u64 | text_len u32 | path_index u32
//!   | start_line u32 | end_line u32 | reserved [8] = 0
//! paths: (path_count + 1) x u64 offsets into the path blob, then the blob
//! text: the chunk texts, UTF-8, back to back
//! ```

use std::io::{self, Write};

use crate::layout::{Fixed, header, write_header};

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFCK1";
const HEADER_LEN: usize = 64;
const RECORD_LEN: usize = 64;

/// Why bytes are not a valid chunk store.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("chunks.bin is invalid: {0}")]
pub struct ChunkStoreError(String);

fn bad<T>(why: impl Into<String>) -> Result<T, ChunkStoreError> {
    Err(ChunkStoreError(why.into()))
}

/// One chunk as the builder hands it to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord<'a> {
    /// sha256 of exactly what was embedded (text, model and settings).
    pub content_id: [u8; 32],
    /// Repository-relative file path.
    pub path: &'a str,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
    /// The chunk's text as it appears in the file.
    pub text: &'a str,
}

/// Writes a chunk store. Chunks must be pushed grouped by path (the builder
/// pushes them sorted by path, then line); a path's index is assigned when
/// it first appears.
#[derive(Debug, Default)]
pub struct ChunkStoreWriter {
    records: Vec<u8>,
    path_offsets: Vec<u64>,
    path_blob: Vec<u8>,
    text: Vec<u8>,
    last_path: Option<String>,
    count: u64,
}

impl ChunkStoreWriter {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends chunk number `self.len()`.
    pub fn push(&mut self, chunk: &ChunkRecord<'_>) {
        if self.last_path.as_deref() != Some(chunk.path) {
            self.path_offsets.push(self.path_blob.len() as u64);
            self.path_blob.extend_from_slice(chunk.path.as_bytes());
            self.last_path = Some(chunk.path.to_string());
        }
        let path_index = (self.path_offsets.len() - 1) as u32;
        self.records.extend_from_slice(&chunk.content_id);
        self.records
            .extend_from_slice(&(self.text.len() as u64).to_le_bytes());
        self.records
            .extend_from_slice(&(chunk.text.len() as u32).to_le_bytes());
        self.records.extend_from_slice(&path_index.to_le_bytes());
        self.records
            .extend_from_slice(&chunk.start_line.to_le_bytes());
        self.records
            .extend_from_slice(&chunk.end_line.to_le_bytes());
        self.records.extend_from_slice(&[0u8; 8]);
        self.text.extend_from_slice(chunk.text.as_bytes());
        self.count += 1;
    }

    /// Chunks pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the store.
    pub fn write_to(&self, mut out: impl Write) -> io::Result<()> {
        let path_count = self.path_offsets.len() as u64;
        let records_offset = HEADER_LEN as u64;
        let paths_offset = records_offset + self.records.len() as u64;
        let text_offset = paths_offset + (path_count + 1) * 8 + self.path_blob.len() as u64;
        let header = write_header(
            MAGIC,
            &[
                self.count,
                path_count,
                records_offset,
                paths_offset,
                text_offset,
                self.text.len() as u64,
            ],
        );
        out.write_all(&header)?;
        out.write_all(&self.records)?;
        for off in self
            .path_offsets
            .iter()
            .copied()
            .chain([self.path_blob.len() as u64])
        {
            out.write_all(&off.to_le_bytes())?;
        }
        out.write_all(&self.path_blob)?;
        out.write_all(&self.text)?;
        out.flush()
    }
}

/// A read-only view over chunk store bytes (typically a memory map). All
/// offsets are validated once in [`ChunkStore::parse`]; accessors then only
/// slice.
#[derive(Debug, Clone, Copy)]
pub struct ChunkStore<'a> {
    records: &'a [u8],
    path_offsets: &'a [u8],
    path_blob: &'a [u8],
    text: &'a [u8],
    count: usize,
    path_count: usize,
}

/// One chunk read from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// sha256 of what was embedded.
    pub content_id: &'a [u8; 32],
    /// Repository-relative path.
    pub path: &'a str,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
    /// The text.
    pub text: &'a str,
}

impl<'a> ChunkStore<'a> {
    /// Checks the header and section bounds only: O(1), for a reader that
    /// already ran [`ChunkStore::parse`] on the same immutable bytes (a
    /// server re-opening its memory map per query). Accessors stay
    /// panic-free either way; on unvalidated bytes they may return `None`.
    pub fn open(bytes: &'a [u8]) -> Result<Self, ChunkStoreError> {
        let fields =
            header::<6>(bytes, HEADER_LEN, MAGIC, "chunk store").map_err(ChunkStoreError)?;
        let fit = |v: u64| usize::try_from(v).ok();
        let (Some(count), Some(path_count), Some(rec), Some(paths), Some(text), Some(text_len)) = (
            fit(fields[0]),
            fit(fields[1]),
            fit(fields[2]),
            fit(fields[3]),
            fit(fields[4]),
            fit(fields[5]),
        ) else {
            return bad("a header field does not fit in memory");
        };
        let records_end = count
            .checked_mul(RECORD_LEN)
            .and_then(|n| n.checked_add(rec));
        let offsets_end = path_count
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .and_then(|n| n.checked_add(paths));
        let text_end = text.checked_add(text_len);
        let (Some(records_end), Some(offsets_end), Some(text_end)) =
            (records_end, offsets_end, text_end)
        else {
            return bad("section sizes overflow");
        };
        if rec != HEADER_LEN
            || records_end != paths
            || offsets_end > text
            || text_end != bytes.len()
        {
            return bad("sections are not laid out back to back as the header says");
        }
        Ok(ChunkStore {
            records: &bytes[rec..records_end],
            path_offsets: &bytes[paths..offsets_end],
            path_blob: &bytes[offsets_end..text],
            text: &bytes[text..text_end],
            count,
            path_count,
        })
    }

    /// [`ChunkStore::open`] plus validation of every path offset, record
    /// text range, path index and UTF-8 string: after it succeeds, `get`
    /// returns `Some` for every chunk.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ChunkStoreError> {
        let store = Self::open(bytes)?;
        let offsets = Fixed(store.path_offsets);
        let mut prev = 0usize;
        for p in 0..=store.path_count {
            match offsets.usize_item(p) {
                Some(off) if off >= prev && off <= store.path_blob.len() => prev = off,
                _ => return bad(format!("path {p}'s offset is out of order or out of range")),
            }
        }
        for p in 0..store.path_count {
            if store
                .path_bytes(p)
                .is_none_or(|b| std::str::from_utf8(b).is_err())
            {
                return bad(format!("path {p} is not UTF-8"));
            }
        }
        for i in 0..store.count {
            let Some(r) = store.record(i) else {
                return bad(format!("chunk {i}'s record is out of bounds"));
            };
            if r.path_index >= store.path_count {
                return bad(format!(
                    "chunk {i} names path {} of {}",
                    r.path_index, store.path_count
                ));
            }
            match store
                .text
                .get(r.text_start..r.text_start.saturating_add(r.text_len))
            {
                None => return bad(format!("chunk {i} text range is out of bounds")),
                Some(t) if std::str::from_utf8(t).is_err() => {
                    return bad(format!("chunk {i} text is not UTF-8"));
                }
                Some(_) => {}
            }
        }
        Ok(store)
    }

    /// Record `i`, decoded; `None` when it (or a field) is out of range.
    fn record(&self, i: usize) -> Option<Record<'a>> {
        let r = Fixed(
            self.records
                .get(i.checked_mul(RECORD_LEN)?..)?
                .get(..RECORD_LEN)?,
        );
        Some(Record {
            content_id: r.slice(0, 32)?.try_into().ok()?,
            text_start: r.usize(32)?,
            text_len: r.u32(40)? as usize,
            path_index: r.u32(44)? as usize,
            start_line: r.u32(48)?,
            end_line: r.u32(52)?,
        })
    }

    fn path_bytes(&self, p: usize) -> Option<&'a [u8]> {
        let offsets = Fixed(self.path_offsets);
        self.path_blob
            .get(offsets.usize_item(p)?..offsets.usize_item(p.checked_add(1)?)?)
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the store has no chunks.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of distinct paths.
    pub fn path_count(&self) -> usize {
        self.path_count
    }

    /// Chunk `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Chunk<'a>> {
        if i >= self.count {
            return None;
        }
        let r = self.record(i)?;
        let text = self
            .text
            .get(r.text_start..r.text_start.checked_add(r.text_len)?)?;
        Some(Chunk {
            content_id: r.content_id,
            path: std::str::from_utf8(self.path_bytes(r.path_index)?).ok()?,
            start_line: r.start_line,
            end_line: r.end_line,
            text: std::str::from_utf8(text).ok()?,
        })
    }

    /// The index of chunk `i`'s path (see [`ChunkStore::path`]): chunks of
    /// one file share it, so filters can match each path once.
    pub fn path_index(&self, i: usize) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        let r = Fixed(self.records.get(i.checked_mul(RECORD_LEN)?..)?);
        Some(r.u32(44)? as usize).filter(|&p| p < self.path_count)
    }

    /// Path number `p`, or `None` past the end.
    pub fn path(&self, p: usize) -> Option<&'a str> {
        if p >= self.path_count {
            return None;
        }
        std::str::from_utf8(self.path_bytes(p)?).ok()
    }

    /// The chunks of path number `p`: chunks are stored sorted by path, so
    /// a file's chunks are one range, found by binary search (empty when
    /// the path has none, or the store is not sorted so).
    pub fn chunks_of(&self, p: usize) -> std::ops::Range<usize> {
        let partition = |strict: bool| {
            let (mut lo, mut hi) = (0usize, self.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let below = self
                    .path_index(mid)
                    .is_some_and(|q| if strict { q < p } else { q <= p });
                if below {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        partition(true)..partition(false)
    }

    /// The content id of chunk `i` alone (cheap: no string checks).
    pub fn content_id(&self, i: usize) -> Option<&'a [u8; 32]> {
        if i >= self.count {
            return None;
        }
        let r = Fixed(self.records.get(i.checked_mul(RECORD_LEN)?..)?);
        r.slice(0, 32)?.try_into().ok()
    }
}

/// One decoded record.
struct Record<'a> {
    content_id: &'a [u8; 32],
    text_start: usize,
    text_len: usize,
    path_index: usize,
    start_line: u32,
    end_line: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = ChunkStoreWriter::new();
        for (i, (path, text)) in [
            ("a.rs", "fn a() {}\n"),
            ("a.rs", "fn b() {}\n"),
            ("docs/ü.md", "# Title\n\nbody"),
        ]
        .iter()
        .enumerate()
        {
            w.push(&ChunkRecord {
                content_id: [i as u8; 32],
                path,
                start_line: i as u32 * 10 + 1,
                end_line: i as u32 * 10 + 5,
                text,
            });
        }
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_chunks_paths_and_ranges() {
        let bytes = sample();
        let s = ChunkStore::parse(&bytes).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.path_count(), 2);
        let c = s.get(2).unwrap();
        assert_eq!((c.path, c.start_line, c.end_line), ("docs/ü.md", 21, 25));
        assert_eq!(c.text, "# Title\n\nbody");
        assert_eq!(s.get(1).unwrap().path, "a.rs");
        assert_eq!(s.content_id(1), Some(&[1u8; 32]));
        assert!(s.get(3).is_none());
        // Chunks of one file share a path index.
        assert_eq!(s.path_index(0), s.path_index(1));
        assert_eq!(s.path(s.path_index(2).unwrap()), Some("docs/ü.md"));
        assert_eq!((s.path_index(3), s.path(2)), (None, None));
        assert_eq!(s.chunks_of(0), 0..2);
        assert_eq!(s.chunks_of(1), 2..3);
        assert!(s.chunks_of(2).is_empty());
    }

    #[test]
    fn empty_store_is_valid() {
        let mut out = Vec::new();
        ChunkStoreWriter::new().write_to(&mut out).unwrap();
        assert!(ChunkStore::parse(&out).unwrap().is_empty());
    }

    #[test]
    fn refuses_corruption_instead_of_panicking() {
        let good = sample();
        assert!(ChunkStore::parse(&good[..good.len() - 1]).is_err());
        assert!(ChunkStore::parse(&good[..10]).is_err());
        let mut m = good.clone();
        m[0] = b'X';
        assert!(
            ChunkStore::parse(&m)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        // Every single-byte change in the header or records either still
        // parses or is refused; none panics, and no accessor fails after.
        for i in 0..(64 + 3 * 64) {
            let mut m = good.clone();
            m[i] ^= 0xff;
            if let Ok(s) = ChunkStore::parse(&m) {
                for j in 0..s.len() {
                    assert!(s.get(j).is_some());
                }
            }
        }
    }
}
