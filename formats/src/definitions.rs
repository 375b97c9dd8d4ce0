//! The definitions index, `definitions.bin` (bundle format 1.4): every
//! definition the builder found in the indexed files (its name, the scope
//! it is defined in, its kind, its file and lines), sorted by name so a
//! reader finds every definition of a name by binary search on the memory
//! map. The query side uses it to bring the files that define what a
//! report names into the candidates, and `find_definitions` answers from
//! it. Specified in docs/formats/bundle-v1.md.
//!
//! ```text
//! header (64 bytes, integers little-endian)
//!   0  magic "SHELFDF1"     8  version u32 = 1    12 reserved u32 = 0
//!   16 def_count u64        24 records_off u64 (= 64)
//!   32 strings_off u64      40 strings_len u64
//!   48 reserved u64 = 0     56 reserved u64 = 0
//! records: def_count x 32 bytes, sorted (see below)
//!   0  name_start u32   4  name_len u16   6  kind u8   7  reserved u8 = 0
//!   8  scope_start u32  12 scope_len u16  14 reserved u16 = 0
//!   16 path_index u32 (the chunk store's path number)
//!   20 start_line u32 (1-based)   24 end_line u32 (inclusive)
//!   28 reserved u32 = 0
//! strings: UTF-8 names and scopes, each distinct string once, in the
//!   order the sorted records first use them
//! ```
//!
//! Records are sorted by the name with ASCII letters lowercased, then the
//! name's own bytes, path number, start line, end line, scope and kind:
//! the same definitions always give the same bytes.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::Range;

use crate::layout::{Fixed, header, write_header};

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFDF1";
const HEADER_LEN: usize = 64;
const RECORD_LEN: usize = 32;
/// Longest name or scope stored, in bytes; a builder drops longer ones.
pub const MAX_NAME_BYTES: usize = 256;

/// What a definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefKind {
    /// A free function.
    Function,
    /// A function defined in a class, impl, trait or interface.
    Method,
    /// A class, struct or record.
    Class,
    /// An interface, trait or protocol.
    Interface,
    /// An enum.
    Enum,
    /// A type alias.
    Type,
    /// A module-level constant or variable.
    Variable,
    /// A module or namespace.
    Module,
    /// A macro.
    Macro,
    /// An implementation block (Rust `impl T`): names the type.
    Impl,
}

impl DefKind {
    /// Every kind, in code order.
    pub const ALL: [DefKind; 10] = [
        DefKind::Function,
        DefKind::Method,
        DefKind::Class,
        DefKind::Interface,
        DefKind::Enum,
        DefKind::Type,
        DefKind::Variable,
        DefKind::Module,
        DefKind::Macro,
        DefKind::Impl,
    ];

    /// The byte stored for this kind.
    pub fn code(self) -> u8 {
        match self {
            DefKind::Function => 1,
            DefKind::Method => 2,
            DefKind::Class => 3,
            DefKind::Interface => 4,
            DefKind::Enum => 5,
            DefKind::Type => 6,
            DefKind::Variable => 7,
            DefKind::Module => 8,
            DefKind::Macro => 9,
            DefKind::Impl => 10,
        }
    }

    /// The kind a stored byte means, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Its name in answers (`function`, `class`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DefKind::Function => "function",
            DefKind::Method => "method",
            DefKind::Class => "class",
            DefKind::Interface => "interface",
            DefKind::Enum => "enum",
            DefKind::Type => "type",
            DefKind::Variable => "variable",
            DefKind::Module => "module",
            DefKind::Macro => "macro",
            DefKind::Impl => "impl",
        }
    }
}

/// Why bytes are not a valid definitions index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("definitions.bin is invalid: {0}")]
pub struct DefinitionsError(String);

fn bad<T>(why: impl Into<String>) -> Result<T, DefinitionsError> {
    Err(DefinitionsError(why.into()))
}

/// One definition, as a builder gives it or a reader returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Definition<S = String> {
    /// The name defined, as written (`send`, `Session`).
    pub name: S,
    /// The enclosing definitions, outermost first, joined by `.`
    /// (`Session` for a method of it; empty at the top level).
    pub scope: S,
    /// What it is.
    pub kind: DefKind,
    /// The chunk store's number of its file's path.
    pub path_index: u32,
    /// The line of its name, 1-based.
    pub start_line: u32,
    /// Its last line, inclusive.
    pub end_line: u32,
}

/// Compares `a` and `b` with ASCII letters lowercased.
fn cmp_folded(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

/// The order records are stored in.
fn cmp_records(a: &Definition, b: &Definition) -> Ordering {
    cmp_folded(a.name.as_bytes(), b.name.as_bytes())
        .then_with(|| a.name.cmp(&b.name))
        .then(a.path_index.cmp(&b.path_index))
        .then(a.start_line.cmp(&b.start_line))
        .then(a.end_line.cmp(&b.end_line))
        .then_with(|| a.scope.cmp(&b.scope))
        .then(a.kind.cmp(&b.kind))
}

/// Builds a definitions index.
#[derive(Debug, Default)]
pub struct DefinitionsWriter {
    defs: Vec<Definition>,
}

impl DefinitionsWriter {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a definition. Empty names and names or scopes over
    /// [`MAX_NAME_BYTES`] are dropped (a builder's own bound is lower).
    pub fn push(&mut self, def: Definition) {
        if def.name.is_empty()
            || def.name.len() > MAX_NAME_BYTES
            || def.scope.len() > MAX_NAME_BYTES
        {
            return;
        }
        self.defs.push(def);
    }

    /// Definitions so far.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Writes the index: sorted and deduplicated, so the same definitions
    /// in any order give the same bytes.
    pub fn write_to(&self, mut out: impl Write) -> io::Result<()> {
        let mut defs: Vec<&Definition> = self.defs.iter().collect();
        defs.sort_by(|a, b| cmp_records(a, b));
        defs.dedup();
        let mut strings: Vec<u8> = Vec::new();
        let mut at: HashMap<&str, u32> = HashMap::new();
        let mut records = Vec::with_capacity(defs.len() * RECORD_LEN);
        for d in &defs {
            let mut intern = |s: &'_ str| -> io::Result<u32> {
                let start = u32::try_from(strings.len())
                    .map_err(|_| io::Error::other("definition names over 4 GiB"))?;
                strings.extend_from_slice(s.as_bytes());
                Ok(start)
            };
            let name = match at.get(d.name.as_str()) {
                Some(&s) => s,
                None => {
                    let s = intern(&d.name)?;
                    at.insert(&d.name, s);
                    s
                }
            };
            let scope = match at.get(d.scope.as_str()) {
                Some(&s) => s,
                None => {
                    let s = intern(&d.scope)?;
                    at.insert(&d.scope, s);
                    s
                }
            };
            records.extend_from_slice(&name.to_le_bytes());
            records.extend_from_slice(&(d.name.len() as u16).to_le_bytes());
            records.push(d.kind.code());
            records.push(0);
            records.extend_from_slice(&scope.to_le_bytes());
            records.extend_from_slice(&(d.scope.len() as u16).to_le_bytes());
            records.extend_from_slice(&0u16.to_le_bytes());
            records.extend_from_slice(&d.path_index.to_le_bytes());
            records.extend_from_slice(&d.start_line.to_le_bytes());
            records.extend_from_slice(&d.end_line.to_le_bytes());
            records.extend_from_slice(&0u32.to_le_bytes());
        }
        let strings_off = (HEADER_LEN + records.len()) as u64;
        let mut head = write_header(
            MAGIC,
            &[
                defs.len() as u64,
                HEADER_LEN as u64,
                strings_off,
                strings.len() as u64,
                0,
                0,
            ],
        );
        head.resize(HEADER_LEN, 0);
        out.write_all(&head)?;
        out.write_all(&records)?;
        out.write_all(&strings)?;
        out.flush()
    }
}

/// A read-only view over definitions index bytes (typically a memory
/// map). Validated once by [`Definitions::parse`]; accessors then slice.
#[derive(Debug, Clone, Copy)]
pub struct Definitions<'a> {
    records: &'a [u8],
    strings: &'a [u8],
    count: usize,
}

impl<'a> Definitions<'a> {
    /// Checks the header and section bounds only: O(1), for bytes already
    /// parsed once. Accessors stay panic-free either way.
    pub fn open(bytes: &'a [u8]) -> Result<Self, DefinitionsError> {
        let fields =
            header::<4>(bytes, HEADER_LEN, MAGIC, "definitions index").map_err(DefinitionsError)?;
        let fit = |v: u64| usize::try_from(v).ok();
        let (Some(count), Some(rec), Some(strings), Some(strings_len)) = (
            fit(fields[0]),
            fit(fields[1]),
            fit(fields[2]),
            fit(fields[3]),
        ) else {
            return bad("a header field does not fit in memory");
        };
        let records_end = count
            .checked_mul(RECORD_LEN)
            .and_then(|n| n.checked_add(rec));
        let strings_end = strings.checked_add(strings_len);
        let (Some(records_end), Some(strings_end)) = (records_end, strings_end) else {
            return bad("section sizes overflow");
        };
        if rec != HEADER_LEN || records_end != strings || strings_end != bytes.len() {
            return bad("sections are not laid out back to back as the header says");
        }
        Ok(Self {
            records: &bytes[rec..records_end],
            strings: &bytes[strings..strings_end],
            count,
        })
    }

    /// [`Definitions::open`] plus a check of every record: strings in
    /// bounds and UTF-8, a known kind, lines in order, path numbers below
    /// `path_count` (the chunk store's), records in their sorted order.
    pub fn parse(bytes: &'a [u8], path_count: usize) -> Result<Self, DefinitionsError> {
        let defs = Self::open(bytes)?;
        let mut prev: Option<Definition<&str>> = None;
        for i in 0..defs.count {
            let Some(d) = defs.get(i) else {
                return bad(format!("definition {i} is out of bounds or not UTF-8"));
            };
            if d.name.is_empty() || d.start_line == 0 || d.end_line < d.start_line {
                return bad(format!(
                    "definition {i} has no name or its lines are reversed"
                ));
            }
            if d.path_index as usize >= path_count {
                return bad(format!(
                    "definition {i} names path {} of {path_count}",
                    d.path_index
                ));
            }
            if let Some(p) = &prev {
                let order = cmp_folded(p.name.as_bytes(), d.name.as_bytes())
                    .then_with(|| p.name.cmp(d.name))
                    .then(p.path_index.cmp(&d.path_index))
                    .then(p.start_line.cmp(&d.start_line));
                if order == Ordering::Greater {
                    return bad(format!("definition {i} is out of order"));
                }
            }
            prev = Some(d);
        }
        Ok(defs)
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn string(&self, start: u32, len: u16) -> Option<&'a str> {
        let start = start as usize;
        std::str::from_utf8(self.strings.get(start..start.checked_add(len as usize)?)?).ok()
    }

    fn name_bytes(&self, i: usize) -> Option<&'a [u8]> {
        let r = Fixed(self.records.get(i.checked_mul(RECORD_LEN)?..)?);
        let start = r.u32(0)? as usize;
        let len = u16::from_le_bytes(r.slice(4, 2)?.try_into().ok()?) as usize;
        self.strings.get(start..start.checked_add(len)?)
    }

    /// Definition `i` (in stored order), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Definition<&'a str>> {
        if i >= self.count {
            return None;
        }
        let r = Fixed(self.records.get(i * RECORD_LEN..)?.get(..RECORD_LEN)?);
        let u16_at = |at: usize| Some(u16::from_le_bytes(r.slice(at, 2)?.try_into().ok()?));
        Some(Definition {
            name: self.string(r.u32(0)?, u16_at(4)?)?,
            kind: DefKind::from_code(*r.slice(6, 1)?.first()?)?,
            scope: self.string(r.u32(8)?, u16_at(12)?)?,
            path_index: r.u32(16)?,
            start_line: r.u32(20)?,
            end_line: r.u32(24)?,
        })
    }

    /// The definitions whose name equals `name` with ASCII letters
    /// lowercased on both sides (`session` finds `Session` and `session`):
    /// a range of stored positions, found by binary search.
    pub fn lookup(&self, name: &str) -> Range<usize> {
        let key = name.as_bytes();
        let below = |i: usize, strict: bool| {
            self.name_bytes(i)
                .is_some_and(|n| match cmp_folded(n, key) {
                    Ordering::Less => true,
                    Ordering::Equal => !strict,
                    Ordering::Greater => false,
                })
        };
        let partition = |strict: bool| {
            let (mut lo, mut hi) = (0usize, self.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if below(mid, strict) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        partition(true)..partition(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, scope: &str, kind: DefKind, path: u32, line: u32) -> Definition {
        Definition {
            name: name.into(),
            scope: scope.into(),
            kind,
            path_index: path,
            start_line: line,
            end_line: line + 3,
        }
    }

    fn sample() -> Vec<Definition> {
        vec![
            def("send", "Session", DefKind::Method, 1, 40),
            def("Session", "", DefKind::Class, 1, 10),
            def("session", "", DefKind::Function, 0, 5),
            def("send", "HTTPAdapter", DefKind::Method, 0, 90),
            def("parse_args", "", DefKind::Function, 2, 1),
        ]
    }

    fn bytes_of(defs: &[Definition]) -> Vec<u8> {
        let mut w = DefinitionsWriter::new();
        for d in defs {
            w.push(d.clone());
        }
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn lookups_find_every_definition_of_a_name_in_any_case() {
        let bytes = bytes_of(&sample());
        let d = Definitions::parse(&bytes, 3).unwrap();
        assert_eq!(d.len(), 5);
        let found: Vec<_> = d.lookup("send").map(|i| d.get(i).unwrap()).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].scope, found[0].path_index, found[0].start_line),
            ("HTTPAdapter", 0, 90)
        );
        assert_eq!(found[1].scope, "Session");
        assert_eq!(found[1].kind, DefKind::Method);
        // Both cases of a name are one range.
        let s: Vec<_> = d.lookup("session").map(|i| d.get(i).unwrap()).collect();
        assert_eq!(s.len(), 2);
        assert!(
            s.iter()
                .any(|x| x.name == "Session" && x.kind == DefKind::Class)
        );
        assert!(d.lookup("absent").is_empty());
        assert!(d.lookup("").is_empty());
        assert_eq!(d.lookup("parse_args").len(), 1);
    }

    #[test]
    fn the_same_definitions_in_any_order_give_the_same_bytes() {
        let mut defs = sample();
        let a = bytes_of(&defs);
        defs.reverse();
        defs.push(defs[0].clone());
        assert_eq!(a, bytes_of(&defs), "order and duplicates change nothing");
        // Each distinct string is stored once.
        let d = Definitions::parse(&a, 3).unwrap();
        let text = String::from_utf8_lossy(&a);
        assert_eq!(text.matches("Session").count(), 1, "{d:?}");
    }

    #[test]
    fn an_empty_index_is_valid_and_bad_records_are_refused() {
        let empty = bytes_of(&[]);
        assert!(Definitions::parse(&empty, 0).unwrap().is_empty());
        let good = bytes_of(&sample());
        let e = Definitions::parse(&good, 2).unwrap_err().to_string();
        assert!(e.contains("names path 2 of 2"), "{e}");
        assert!(Definitions::parse(&good[..good.len() - 1], 3).is_err());
        let mut m = good.clone();
        m[0] = b'X';
        assert!(
            Definitions::parse(&m, 3)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        // No single-byte change panics a reader, and what parses reads.
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] ^= 0x5a;
            if let Ok(d) = Definitions::parse(&m, 3) {
                for j in 0..d.len() {
                    assert!(d.get(j).is_some());
                }
                let _ = d.lookup("send");
            }
        }
        // Names past the bound are dropped, not truncated.
        let mut w = DefinitionsWriter::new();
        w.push(def(
            &"x".repeat(MAX_NAME_BYTES + 1),
            "",
            DefKind::Function,
            0,
            1,
        ));
        w.push(def("", "", DefKind::Function, 0, 1));
        assert!(w.is_empty());
    }
}
