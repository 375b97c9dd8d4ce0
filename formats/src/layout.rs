//! Fixed-width fields in a byte slice: the one reader behind every
//! memory-mappable member of a bundle (`chunks.bin`, `lexical.bin`). Both
//! files start with the same kind of header (an 8-byte magic that carries
//! the layout, a `u32` layout version, a reserved `u32`, then `u64`
//! fields) and are then read in place. Every read is bounds-checked and
//! returns `None` instead of panicking, so an accessor on bytes that changed
//! under a reader can return garbage-free `None`, never crash.

/// Bytes of the common header before the file-specific `u64` fields.
const PREAMBLE: usize = 16;

/// A little-endian view over bytes.
#[derive(Debug, Clone, Copy)]
pub struct Fixed<'a>(pub &'a [u8]);

impl<'a> Fixed<'a> {
    /// The `u32` at byte `at`.
    pub fn u32(self, at: usize) -> Option<u32> {
        let b = self.0.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    /// The `u64` at byte `at`.
    pub fn u64(self, at: usize) -> Option<u64> {
        let b = self.0.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// The `u64` at byte `at`, if it also fits in memory.
    pub fn usize(self, at: usize) -> Option<usize> {
        usize::try_from(self.u64(at)?).ok()
    }

    /// Element `i` of an array of `u64` starting at byte 0.
    pub fn u64_item(self, i: usize) -> Option<u64> {
        self.u64(i.checked_mul(8)?)
    }

    /// Element `i` of an array of `u64` starting at byte 0, as `usize`.
    pub fn usize_item(self, i: usize) -> Option<usize> {
        usize::try_from(self.u64_item(i)?).ok()
    }

    /// `len` bytes from `start`.
    pub fn slice(self, start: usize, len: usize) -> Option<&'a [u8]> {
        self.0.get(start..start.checked_add(len)?)
    }
}

/// Checks the common header of a `len`-byte header with `magic` and layout
/// version 1, and returns its `count` `u64` fields (at byte 16 onwards).
/// `what` names the file in errors.
pub fn header<const N: usize>(
    bytes: &[u8],
    len: usize,
    magic: &[u8; 8],
    what: &str,
) -> Result<[u64; N], String> {
    if bytes.len() < len || len < PREAMBLE + N * 8 {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    if &bytes[..8] != magic {
        return Err(format!(
            "wrong magic (not a shelf {what}, or another layout version)"
        ));
    }
    let fixed = Fixed(bytes);
    match fixed.u32(8) {
        Some(1) => {}
        other => {
            return Err(format!(
                "layout version {} is not 1",
                other.unwrap_or_default()
            ));
        }
    }
    let mut fields = [0u64; N];
    for (i, f) in fields.iter_mut().enumerate() {
        *f = fixed
            .u64(PREAMBLE + i * 8)
            .ok_or_else(|| "the header is truncated".to_string())?;
    }
    Ok(fields)
}

/// Writes the common header: magic, layout version 1, reserved 0, then the
/// `u64` fields.
pub fn write_header(magic: &[u8; 8], fields: &[u64]) -> Vec<u8> {
    let mut header = Vec::with_capacity(PREAMBLE + fields.len() * 8);
    header.extend_from_slice(magic);
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    for v in fields {
        header.extend_from_slice(&v.to_le_bytes());
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_never_panic() {
        let b = [1u8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        let f = Fixed(&b);
        assert_eq!(f.u32(0), Some(1));
        assert_eq!(f.u64(4), Some(2));
        assert_eq!(f.u64(5), None);
        assert_eq!(f.u32(usize::MAX - 1), None);
        assert_eq!(f.slice(10, 4), None);
        assert_eq!(f.slice(10, 2), Some(&b[10..12]));
        assert_eq!(f.u64_item(usize::MAX), None);
    }

    #[test]
    fn headers_round_trip_and_refusals_name_the_problem() {
        let mut h = write_header(b"SHELFXX1", &[7, 9]);
        h.resize(64, 0);
        assert_eq!(header::<2>(&h, 64, b"SHELFXX1", "thing"), Ok([7, 9]));
        let e = header::<2>(&h, 64, b"SHELFYY1", "thing").unwrap_err();
        assert!(e.contains("magic") && e.contains("thing"), "{e}");
        assert!(header::<2>(&h[..20], 64, b"SHELFXX1", "thing").is_err());
        h[8] = 2;
        assert!(
            header::<2>(&h, 64, b"SHELFXX1", "thing")
                .unwrap_err()
                .contains("version 2")
        );
    }
}
