//! The history index, `history.bin` (bundle format 1.4): the most recent
//! commits among the bundle's commit and its ancestors, each with its
//! message and the files it changed, so a query can find the past changes
//! most like it and the files they touched. Its messages are searched
//! through a lexical index of their own, `history-lexical.bin` (the
//! layout of `lexical.bin`; document `i` is commit `i`). Which commits are
//! in it is decided by the builder (`settings.history` in the manifest);
//! this module only knows the bytes. Specified in
//! docs/formats/bundle-v1.md.
//!
//! ```text
//! header (64 bytes, integers little-endian)
//!   0  magic "SHELFHI1"     8  version u32 = 1    12 reserved u32 = 0
//!   16 commit_count u64     24 path_count u64
//!   32 commits_off u64 (= 64)   40 refs_off u64
//!   48 paths_off u64        56 text_off u64
//! commits: commit_count x 64 bytes, newest first
//!   0  id [32]u8 (the object id's bytes, zero-padded)
//!   32 id_len u8    33 reserved [7]u8 = 0
//!   40 time i64 (committer time, Unix seconds)
//!   48 message_start u32   52 message_len u32   (into text)
//!   56 refs_start u32      60 refs_len u32      (into refs)
//! refs: u32 path numbers, each commit's ascending and distinct
//! paths: (path_count + 1) x u64 offsets into the path blob, then the blob
//!   (UTF-8, sorted bytewise, unique)
//! text: the messages, UTF-8, back to back
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use crate::layout::{Fixed, header, write_header};

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFHI1";
const HEADER_LEN: usize = 64;
const COMMIT_LEN: usize = 64;
/// Longest object id stored (SHA-256 repositories).
pub const MAX_ID_BYTES: usize = 32;

/// Why bytes are not a valid history index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("history.bin is invalid: {0}")]
pub struct HistoryError(String);

fn bad<T>(why: impl Into<String>) -> Result<T, HistoryError> {
    Err(HistoryError(why.into()))
}

/// One commit of the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistoryCommit {
    /// The object id's bytes (20 for SHA-1).
    pub id: Vec<u8>,
    /// Committer time, Unix seconds.
    pub time: i64,
    /// The message as the builder keeps it.
    pub message: String,
    /// The files it changed, as paths at that commit, sorted and distinct.
    pub files: Vec<String>,
}

impl HistoryCommit {
    /// The object id in lowercase hex.
    pub fn id_hex(&self) -> String {
        hex::encode(&self.id)
    }
}

/// Writes a history index: commits in the order given (a builder gives
/// them newest first).
#[derive(Debug, Default)]
pub struct HistoryWriter {
    commits: Vec<HistoryCommit>,
}

impl HistoryWriter {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a commit; ids longer than [`MAX_ID_BYTES`] are refused.
    pub fn push(&mut self, commit: HistoryCommit) -> io::Result<()> {
        if commit.id.is_empty() || commit.id.len() > MAX_ID_BYTES {
            return Err(io::Error::other(format!(
                "a commit id of {} bytes (at most {MAX_ID_BYTES})",
                commit.id.len()
            )));
        }
        self.commits.push(commit);
        Ok(())
    }

    /// Commits so far.
    pub fn len(&self) -> usize {
        self.commits.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// Writes the index.
    pub fn write_to(&self, mut out: impl Write) -> io::Result<()> {
        let paths: BTreeSet<&str> = self
            .commits
            .iter()
            .flat_map(|c| c.files.iter().map(String::as_str))
            .collect();
        let number: BTreeMap<&str, u32> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect();
        let too_big = || io::Error::other("a history index over 4 GiB");
        let mut commits = Vec::with_capacity(self.commits.len() * COMMIT_LEN);
        let mut refs: Vec<u32> = Vec::new();
        let mut text: Vec<u8> = Vec::new();
        for c in &self.commits {
            let mut id = [0u8; MAX_ID_BYTES];
            id[..c.id.len()].copy_from_slice(&c.id);
            commits.extend_from_slice(&id);
            commits.push(c.id.len() as u8);
            commits.extend_from_slice(&[0u8; 7]);
            commits.extend_from_slice(&c.time.to_le_bytes());
            let start = u32::try_from(text.len()).map_err(|_| too_big())?;
            let len = u32::try_from(c.message.len()).map_err(|_| too_big())?;
            text.extend_from_slice(c.message.as_bytes());
            commits.extend_from_slice(&start.to_le_bytes());
            commits.extend_from_slice(&len.to_le_bytes());
            let mut own: Vec<u32> = c.files.iter().map(|f| number[f.as_str()]).collect();
            own.sort_unstable();
            own.dedup();
            let start = u32::try_from(refs.len()).map_err(|_| too_big())?;
            commits.extend_from_slice(&start.to_le_bytes());
            commits.extend_from_slice(&(own.len() as u32).to_le_bytes());
            refs.extend(own);
        }
        let path_blob_len: u64 = paths.iter().map(|p| p.len() as u64).sum();
        let refs_off = (HEADER_LEN + commits.len()) as u64;
        let paths_off = refs_off + refs.len() as u64 * 4;
        let text_off = paths_off + (paths.len() as u64 + 1) * 8 + path_blob_len;
        out.write_all(&write_header(
            MAGIC,
            &[
                self.commits.len() as u64,
                paths.len() as u64,
                HEADER_LEN as u64,
                refs_off,
                paths_off,
                text_off,
            ],
        ))?;
        out.write_all(&commits)?;
        for r in &refs {
            out.write_all(&r.to_le_bytes())?;
        }
        let mut off = 0u64;
        for p in &paths {
            out.write_all(&off.to_le_bytes())?;
            off += p.len() as u64;
        }
        out.write_all(&off.to_le_bytes())?;
        for p in &paths {
            out.write_all(p.as_bytes())?;
        }
        out.write_all(&text)?;
        out.flush()
    }
}

/// A read-only view over history index bytes (typically a memory map).
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    commits: &'a [u8],
    refs: &'a [u8],
    path_offsets: &'a [u8],
    path_blob: &'a [u8],
    text: &'a [u8],
    count: usize,
    path_count: usize,
}

/// One commit read from an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitView<'a> {
    /// The object id's bytes.
    pub id: &'a [u8],
    /// Committer time, Unix seconds.
    pub time: i64,
    /// The message.
    pub message: &'a str,
    refs: &'a [u8],
}

impl<'a> CommitView<'a> {
    /// The numbers of the paths it changed ([`History::path`]), ascending.
    pub fn path_numbers(&self) -> impl Iterator<Item = usize> + 'a {
        self.refs
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// How many files it changed.
    pub fn file_count(&self) -> usize {
        self.refs.len() / 4
    }

    /// The object id in lowercase hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

impl<'a> History<'a> {
    /// Checks the header and section bounds only: O(1), for bytes already
    /// parsed once. Accessors stay panic-free either way.
    pub fn open(bytes: &'a [u8]) -> Result<Self, HistoryError> {
        let f = header::<6>(bytes, HEADER_LEN, MAGIC, "history index").map_err(HistoryError)?;
        let fit = |v: u64| usize::try_from(v).ok();
        let (Some(count), Some(path_count), Some(commits), Some(refs), Some(paths), Some(text)) = (
            fit(f[0]),
            fit(f[1]),
            fit(f[2]),
            fit(f[3]),
            fit(f[4]),
            fit(f[5]),
        ) else {
            return bad("a header field does not fit in memory");
        };
        let commits_end = count
            .checked_mul(COMMIT_LEN)
            .and_then(|n| n.checked_add(commits));
        let offsets_end = path_count
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .and_then(|n| n.checked_add(paths));
        let (Some(commits_end), Some(offsets_end)) = (commits_end, offsets_end) else {
            return bad("section sizes overflow");
        };
        if commits != HEADER_LEN
            || commits_end != refs
            || refs > paths
            || (paths - refs) % 4 != 0
            || offsets_end > text
            || text > bytes.len()
        {
            return bad("sections are not laid out back to back as the header says");
        }
        Ok(Self {
            commits: &bytes[commits..commits_end],
            refs: &bytes[refs..paths],
            path_offsets: &bytes[paths..offsets_end],
            path_blob: &bytes[offsets_end..text],
            text: &bytes[text..],
            count,
            path_count,
        })
    }

    /// [`History::open`] plus a check of every commit (id length, message
    /// bounds and UTF-8, path numbers in range, ascending and distinct) and
    /// every path (in bounds, UTF-8, sorted and distinct).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, HistoryError> {
        let h = Self::open(bytes)?;
        let offsets = Fixed(h.path_offsets);
        let mut prev = 0usize;
        for p in 0..=h.path_count {
            match offsets.usize_item(p) {
                Some(off) if off >= prev && off <= h.path_blob.len() => prev = off,
                _ => return bad(format!("path {p}'s offset is out of order or out of range")),
            }
        }
        if prev != h.path_blob.len() {
            return bad("the path blob has bytes no path uses");
        }
        let mut last: Option<&str> = None;
        for p in 0..h.path_count {
            let Some(path) = h.path(p) else {
                return bad(format!("path {p} is not UTF-8"));
            };
            if last.is_some_and(|l| l >= path) {
                return bad(format!("path {p} is out of order"));
            }
            last = Some(path);
        }
        let mut text_used = 0usize;
        for i in 0..h.count {
            let Some(c) = h.get(i) else {
                return bad(format!("commit {i} is out of bounds or not UTF-8"));
            };
            text_used += c.message.len();
            let mut prev: Option<usize> = None;
            for n in c.path_numbers() {
                if n >= h.path_count || prev.is_some_and(|p| p >= n) {
                    return bad(format!("commit {i}'s files are out of range or order"));
                }
                prev = Some(n);
            }
        }
        if text_used != h.text.len() {
            return bad("the text section has bytes no message uses");
        }
        Ok(h)
    }

    /// Number of commits.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of distinct paths.
    pub fn path_count(&self) -> usize {
        self.path_count
    }

    /// Path number `p`.
    pub fn path(&self, p: usize) -> Option<&'a str> {
        let offsets = Fixed(self.path_offsets);
        let bytes = self
            .path_blob
            .get(offsets.usize_item(p)?..offsets.usize_item(p.checked_add(1)?)?)?;
        std::str::from_utf8(bytes).ok()
    }

    /// Commit `i` (0 is the newest), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<CommitView<'a>> {
        if i >= self.count {
            return None;
        }
        let r = Fixed(self.commits.get(i * COMMIT_LEN..)?.get(..COMMIT_LEN)?);
        let id_len = *r.slice(32, 1)?.first()? as usize;
        if id_len == 0 || id_len > MAX_ID_BYTES {
            return None;
        }
        let time = i64::from_le_bytes(r.slice(40, 8)?.try_into().ok()?);
        let (ms, ml) = (r.u32(48)? as usize, r.u32(52)? as usize);
        let (rs, rl) = (r.u32(56)? as usize, r.u32(60)? as usize);
        let message = std::str::from_utf8(self.text.get(ms..ms.checked_add(ml)?)?).ok()?;
        let refs = self
            .refs
            .get(rs.checked_mul(4)?..rs.checked_add(rl)?.checked_mul(4)?)?;
        Some(CommitView {
            id: r.slice(0, id_len)?,
            time,
            message,
            refs,
        })
    }

    /// Commit `i` as an owned record (what a builder carries forward).
    pub fn commit(&self, i: usize) -> Option<HistoryCommit> {
        let c = self.get(i)?;
        Some(HistoryCommit {
            id: c.id.to_vec(),
            time: c.time,
            message: c.message.to_string(),
            files: c
                .path_numbers()
                .map(|p| self.path(p).map(str::to_string))
                .collect::<Option<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: u8, time: i64, message: &str, files: &[&str]) -> HistoryCommit {
        HistoryCommit {
            id: vec![id; 20],
            time,
            message: message.into(),
            files: files.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn sample() -> Vec<HistoryCommit> {
        vec![
            commit(
                3,
                300,
                "Fix retry loop when the pool closes",
                &["src/retry.rs"],
            ),
            commit(
                2,
                200,
                "Add LRU cache\n\nfor sessions",
                &["src/cache.rs", "src/lib.rs"],
            ),
            commit(1, 100, "", &[]),
        ]
    }

    fn bytes_of(commits: &[HistoryCommit]) -> Vec<u8> {
        let mut w = HistoryWriter::new();
        for c in commits {
            w.push(c.clone()).unwrap();
        }
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn commits_round_trip_with_their_files() {
        let commits = sample();
        let bytes = bytes_of(&commits);
        let h = History::parse(&bytes).unwrap();
        assert_eq!((h.len(), h.path_count()), (3, 3));
        for (i, c) in commits.iter().enumerate() {
            assert_eq!(h.commit(i).as_ref(), Some(c));
        }
        let c = h.get(1).unwrap();
        let files: Vec<&str> = c.path_numbers().map(|p| h.path(p).unwrap()).collect();
        assert_eq!(files, ["src/cache.rs", "src/lib.rs"]);
        assert_eq!(c.file_count(), 2);
        assert_eq!(c.id_hex(), "02".repeat(20));
        assert!(h.get(3).is_none());
    }

    #[test]
    fn an_empty_index_is_valid_and_damage_is_refused_without_panics() {
        assert!(History::parse(&bytes_of(&[])).unwrap().is_empty());
        let good = bytes_of(&sample());
        assert!(History::parse(&good[..good.len() - 1]).is_err());
        let mut long = good.clone();
        long.push(b'x');
        assert!(History::parse(&long).is_err(), "trailing bytes");
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] ^= 0x5a;
            if let Ok(h) = History::parse(&m) {
                for j in 0..h.len() {
                    assert!(h.commit(j).is_some());
                }
            }
        }
        let mut w = HistoryWriter::new();
        assert!(w.push(commit(1, 0, "x", &[])).is_ok());
        let mut too_long = commit(1, 0, "x", &[]);
        too_long.id = vec![0; 33];
        assert!(w.push(too_long).is_err());
    }
}
