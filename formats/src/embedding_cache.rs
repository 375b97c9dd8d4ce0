//! The store's embedding cache: vectors by content id, for one model, in
//! immutable content-addressed **packs**, plus the small **uses records**
//! that say which packs a bundle's vectors are in (what `shelf gc` keeps).
//! Specified in docs/formats/store-v1.md ("Embedding cache").
//!
//! ```text
//! pack, layout version 1 (integers little-endian)
//! header, 96 bytes
//!   0  magic "SHELFVP1"      8  version u32 = 1   12 reserved u32 = 0
//!   16 count u64             24 dimensions u64
//!   32 ids_offset u64 (= 96) 40 vectors_offset u64 (= 96 + 32 x count)
//!   48 model [32]: the model identity digest ([`model_digest`])
//!   80 reserved [16] = 0
//! ids: count x 32 bytes, content ids in strictly ascending byte order
//! vectors: count x dimensions x f32, vector i belongs to id i
//! ```
//!
//! Ids come first so a reader can learn which ids a pack holds from a
//! ranged read of its first `96 + 32 x count` bytes, without the vectors.
//! Sorted and unique ids make a pack's bytes a function of its set of
//! vectors: two writers of the same vectors write the same pack, under the
//! same name.

use serde::{Deserialize, Serialize};

use crate::ModelIdentity;
use crate::digest::Digest;
use crate::layout::{Fixed, header, write_header};

/// File magic, which also carries the layout version.
pub const MAGIC: &[u8; 8] = b"SHELFVP1";
/// Bytes of a pack's header.
pub const HEADER_LEN: usize = 96;
/// Bytes of one content id in the id table.
pub const ID_LEN: usize = 32;
/// Writers split their vectors into packs of at most this many bytes (a
/// bounded download, and memory, per pack).
pub const MAX_PACK_BYTES: u64 = 32 << 20;
/// Readers refuse packs larger than this without downloading them.
pub const READ_LIMIT_BYTES: u64 = 1 << 30;
/// Schema of a uses record.
pub const USES_SCHEMA: &str = "shelf.cache-uses/v1";

/// Why bytes are not a usable pack.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("embedding-cache pack is invalid: {0}")]
pub struct PackError(String);

fn bad<T>(why: impl Into<String>) -> Result<T, PackError> {
    Err(PackError(why.into()))
}

/// The identity digest of a model: sha256 of `shelf-model-v1\0` and the
/// identity's JSON. Every field that decides a vector (name, dimensions,
/// pooling, normalisation, token limit, ONNX and tokenizer hashes,
/// prefixes) is in it, so two models share cache entries only if they are
/// the same model.
pub fn model_digest(model: &ModelIdentity) -> Digest {
    let mut bytes = b"shelf-model-v1\0".to_vec();
    // A struct of strings, numbers and byte arrays always serialises.
    bytes.extend(serde_json::to_vec(model).unwrap_or_default());
    Digest::of(&bytes)
}

/// A pack's header: enough to plan which packs to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackHead {
    /// Vectors in the pack.
    pub count: u64,
    /// Dimensions of every vector.
    pub dimensions: u64,
    /// The model identity digest the vectors were made with.
    pub model: Digest,
}

impl PackHead {
    /// Parses the header at the start of `bytes` (a whole pack or a
    /// prefix of one).
    pub fn parse(bytes: &[u8]) -> Result<Self, PackError> {
        let [count, dimensions, ids_offset, vectors_offset] =
            header::<4>(bytes, HEADER_LEN, MAGIC, "embedding-cache pack").map_err(PackError)?;
        let head = PackHead {
            count,
            dimensions,
            model: Digest::from_bytes(
                Fixed(bytes)
                    .slice(48, 32)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| PackError("the header is truncated".into()))?,
            ),
        };
        if dimensions == 0 || dimensions > 65_536 {
            return bad(format!("{dimensions} dimensions"));
        }
        if ids_offset != HEADER_LEN as u64 || Some(vectors_offset) != head.ids_end() {
            return bad("sections are not laid out back to back as the header says");
        }
        if head.total_len().is_none() {
            return bad("section sizes overflow");
        }
        Ok(head)
    }

    /// Byte offset where the id table ends (and the vectors start).
    pub fn ids_end(&self) -> Option<u64> {
        self.count
            .checked_mul(ID_LEN as u64)?
            .checked_add(HEADER_LEN as u64)
    }

    /// The whole pack's size in bytes, as the header implies it.
    pub fn total_len(&self) -> Option<u64> {
        self.count
            .checked_mul(self.dimensions)?
            .checked_mul(4)?
            .checked_add(self.ids_end()?)
    }

    /// Refuses a pack of another model or dimensions than expected.
    pub fn expect(&self, model: &Digest, dimensions: u32) -> Result<(), PackError> {
        if self.model != *model {
            return bad(format!(
                "it holds vectors of model {}, not of {model}",
                self.model
            ));
        }
        if self.dimensions != u64::from(dimensions) {
            return bad(format!(
                "its vectors have {} dimensions, the model has {dimensions}",
                self.dimensions
            ));
        }
        Ok(())
    }

    /// The ids of a pack whose first [`PackHead::ids_end`] bytes are in
    /// `prefix`, checked to be strictly ascending.
    pub fn ids(&self, prefix: &[u8]) -> Result<Vec<[u8; 32]>, PackError> {
        let end = self
            .ids_end()
            .and_then(|e| usize::try_from(e).ok())
            .ok_or_else(|| PackError("the id table does not fit in memory".into()))?;
        let Some(table) = prefix.get(HEADER_LEN..end) else {
            return bad("the id table is truncated");
        };
        let ids: Vec<[u8; 32]> = table
            .chunks_exact(ID_LEN)
            .filter_map(|c| c.try_into().ok())
            .collect();
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return bad("its ids are not in strictly ascending order");
        }
        Ok(ids)
    }
}

/// A read-only, fully validated view over a whole pack's bytes.
#[derive(Debug, Clone)]
pub struct VectorPack<'a> {
    head: PackHead,
    ids: Vec<[u8; 32]>,
    vectors: &'a [u8],
}

impl<'a> VectorPack<'a> {
    /// Validates everything: header, size, id order, and that every
    /// component of every vector is a finite number.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PackError> {
        let head = PackHead::parse(bytes)?;
        if head.total_len() != Some(bytes.len() as u64) {
            return bad(format!(
                "{} bytes, but its header describes {} vectors of {} dimensions",
                bytes.len(),
                head.count,
                head.dimensions
            ));
        }
        let ids = head.ids(bytes)?;
        let start = HEADER_LEN + ids.len() * ID_LEN;
        let vectors = &bytes[start..];
        if vectors
            .chunks_exact(4)
            .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
        {
            return bad("a vector has a component that is not a finite number");
        }
        Ok(VectorPack { head, ids, vectors })
    }

    /// The header.
    pub fn head(&self) -> &PackHead {
        &self.head
    }

    /// Vectors in the pack.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The content ids, ascending.
    pub fn ids(&self) -> &[[u8; 32]] {
        &self.ids
    }

    /// The vector of `id`, if the pack holds it.
    pub fn get(&self, id: &[u8; 32]) -> Option<Vec<f32>> {
        let i = self.ids.binary_search(id).ok()?;
        let dims = usize::try_from(self.head.dimensions).ok()?;
        let raw = Fixed(self.vectors).slice(i.checked_mul(dims * 4)?, dims * 4)?;
        Some(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

/// Writes `vectors` as packs of at most [`MAX_PACK_BYTES`]: sorted by id,
/// duplicates dropped (equal ids have equal vectors), split in id order.
/// Refuses a vector of the wrong length or with a non-finite component,
/// so a bad vector never reaches a store.
pub fn write_packs(
    model: &Digest,
    dimensions: u32,
    vectors: &[([u8; 32], &[f32])],
) -> Result<Vec<Vec<u8>>, PackError> {
    let dims = dimensions as usize;
    if dims == 0 {
        return bad("0 dimensions");
    }
    let mut sorted: Vec<&([u8; 32], &[f32])> = vectors.iter().collect();
    sorted.sort_by_key(|a| a.0);
    sorted.dedup_by(|a, b| a.0 == b.0);
    for (id, v) in &sorted {
        if v.len() != dims {
            return bad(format!(
                "the vector of {} has {} dimensions, not {dims}",
                hex::encode(id),
                v.len()
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return bad(format!(
                "the vector of {} has a non-finite component",
                hex::encode(id)
            ));
        }
    }
    let per_vector = (ID_LEN + dims * 4) as u64;
    let per_pack = ((MAX_PACK_BYTES - HEADER_LEN as u64) / per_vector).max(1) as usize;
    Ok(sorted
        .chunks(per_pack)
        .map(|part| {
            let count = part.len() as u64;
            let ids_end = HEADER_LEN as u64 + count * ID_LEN as u64;
            let mut out = write_header(MAGIC, &[count, dims as u64, HEADER_LEN as u64, ids_end]);
            out.extend_from_slice(model.as_bytes());
            out.resize(HEADER_LEN, 0);
            out.reserve(part.len() * per_vector as usize);
            for (id, _) in part {
                out.extend_from_slice(id);
            }
            for (_, v) in part {
                for x in v.iter() {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            out
        })
        .collect())
}

/// Which packs hold a bundle's vectors (`shelf.cache-uses/v1`). Written by
/// a build with a store when its bundle is made; `shelf gc` keeps every
/// pack a retained bundle's records name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsesRecord {
    /// Always [`USES_SCHEMA`].
    pub schema: String,
    /// The bundle.
    pub bundle: Digest,
    /// The model identity digest of the packs.
    pub model: Digest,
    /// The packs, sorted.
    pub packs: Vec<Digest>,
}

impl UsesRecord {
    /// A record of `packs` (sorted and deduplicated here, so one set of
    /// packs always has the same bytes).
    pub fn new(bundle: Digest, model: Digest, mut packs: Vec<Digest>) -> Self {
        packs.sort();
        packs.dedup();
        Self {
            schema: USES_SCHEMA.into(),
            bundle,
            model,
            packs,
        }
    }

    /// Compact JSON and a newline: no time in it, so the same record is
    /// the same bytes and the same key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses a record, refusing another schema.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let r: UsesRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.schema != USES_SCHEMA {
            return Err(format!("schema '{}' is not {USES_SCHEMA}", r.schema));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Digest {
        Digest::of(b"model")
    }

    fn id(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn packs_round_trip_sorted_and_deduplicated() {
        let (a, b) = (vec![0.5f32, -0.25, 1.0], vec![0.0f32, 1.0, -1.0]);
        let bytes = write_packs(&model(), 3, &[(id(9), &a), (id(2), &b), (id(9), &a)]).unwrap();
        assert_eq!(bytes.len(), 1);
        let pack = VectorPack::parse(&bytes[0]).unwrap();
        assert_eq!(pack.ids(), &[id(2), id(9)]);
        assert_eq!(pack.get(&id(9)), Some(a.clone()));
        assert_eq!(pack.get(&id(2)), Some(b.clone()));
        assert_eq!(pack.get(&id(3)), None);
        pack.head().expect(&model(), 3).unwrap();
        // The same set in another order is the same bytes.
        let again = write_packs(&model(), 3, &[(id(2), &b), (id(9), &a)]).unwrap();
        assert_eq!(again, bytes);
        // The head and ids can be read from a prefix.
        let head = PackHead::parse(&bytes[0][..HEADER_LEN]).unwrap();
        let end = head.ids_end().unwrap() as usize;
        assert_eq!(head.ids(&bytes[0][..end]).unwrap(), vec![id(2), id(9)]);
        assert_eq!(head.total_len(), Some(bytes[0].len() as u64));
    }

    #[test]
    fn large_sets_are_split_in_id_order() {
        let v = vec![0.1f32; 4096];
        let ids: Vec<[u8; 32]> = (0..2100u32)
            .map(|i| {
                let mut x = [0u8; 32];
                x[..4].copy_from_slice(&i.to_be_bytes());
                x
            })
            .collect();
        let input: Vec<([u8; 32], &[f32])> = ids.iter().map(|i| (*i, v.as_slice())).collect();
        let packs = write_packs(&model(), 4096, &input).unwrap();
        assert!(packs.len() >= 2, "{} packs", packs.len());
        let mut seen = Vec::new();
        for p in &packs {
            assert!(p.len() as u64 <= MAX_PACK_BYTES);
            seen.extend_from_slice(VectorPack::parse(p).unwrap().ids());
        }
        assert_eq!(seen, ids);
    }

    #[test]
    fn bad_vectors_are_refused_before_they_are_written() {
        let short = vec![1.0f32; 2];
        let nan = vec![f32::NAN, 0.0, 0.0];
        let e = write_packs(&model(), 3, &[(id(1), &short)]).unwrap_err();
        assert!(e.to_string().contains("2 dimensions, not 3"), "{e}");
        let e = write_packs(&model(), 3, &[(id(1), &nan)]).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
    }

    #[test]
    fn damaged_or_foreign_packs_are_refused_with_the_reason() {
        let v = vec![0.5f32; 3];
        let good = write_packs(&model(), 3, &[(id(1), &v), (id(2), &v)])
            .unwrap()
            .remove(0);
        let err = |bytes: &[u8]| VectorPack::parse(bytes).unwrap_err().to_string();
        assert!(err(&good[..good.len() - 1]).contains("header describes"));
        let mut magic = good.clone();
        magic[7] = b'9';
        assert!(err(&magic).contains("magic"));
        let mut version = good.clone();
        version[8] = 2;
        assert!(err(&version).contains("layout version 2 is not 1"));
        let mut order = good.clone();
        order[HEADER_LEN..HEADER_LEN + 32].copy_from_slice(&id(3));
        assert!(err(&order).contains("ascending"));
        let mut nan = good.clone();
        let at = good.len() - 4;
        nan[at..].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert!(err(&nan).contains("finite"));
        let pack = VectorPack::parse(&good).unwrap();
        let e = pack.head().expect(&Digest::of(b"other"), 3).unwrap_err();
        assert!(e.to_string().contains("of model"), "{e}");
        let e = pack.head().expect(&model(), 384).unwrap_err();
        assert!(
            e.to_string().contains("3 dimensions, the model has 384"),
            "{e}"
        );
    }

    #[test]
    fn the_model_digest_changes_with_every_field() {
        let m = ModelIdentity {
            name: "m".into(),
            dimensions: 3,
            pooling: "mean".into(),
            normalized: true,
            max_tokens: 256,
            onnx_sha256: [1; 32],
            tokenizer_sha256: [2; 32],
            query_prefix: String::new(),
            document_prefix: String::new(),
        };
        let d = model_digest(&m);
        assert_eq!(d, model_digest(&m.clone()));
        let mut other = m.clone();
        other.document_prefix = "passage: ".into();
        assert_ne!(d, model_digest(&other));
        other = m.clone();
        other.onnx_sha256 = [3; 32];
        assert_ne!(d, model_digest(&other));
    }

    #[test]
    fn uses_records_are_canonical_and_check_their_schema() {
        let (p, q) = (Digest::of(b"p"), Digest::of(b"q"));
        let r = UsesRecord::new(Digest::of(b"b"), model(), vec![q, p, q]);
        assert_eq!(r.packs.len(), 2);
        assert_eq!(
            r.to_bytes(),
            UsesRecord::new(Digest::of(b"b"), model(), vec![p, q]).to_bytes()
        );
        assert_eq!(UsesRecord::parse(&r.to_bytes()).unwrap(), r);
        let other = String::from_utf8(r.to_bytes())
            .unwrap()
            .replace(USES_SCHEMA, "shelf.cache-uses/v9");
        assert!(
            UsesRecord::parse(other.as_bytes())
                .unwrap_err()
                .contains("v9")
        );
    }
}
