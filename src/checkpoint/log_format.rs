//! The insert log's bytes on disk, and telling a torn tail from damage.
//!
//! A segment starts with the magic [`MAGIC`], then holds records:
//! `[u32 length][u32 crc32 of the length][u32 crc32 of lsn and payload]
//! [u64 lsn][payload]`, little-endian. The length has a checksum of its own
//! so that it can be trusted on its own: a record whose length checks out
//! but which runs past the end of the file is a write that never completed
//! (a *torn tail*, cut off at recovery: it was never acknowledged, because
//! acknowledgement waits for the sync after the whole write). Anything else
//! that fails a check (a bad length checksum, a complete record with a bad
//! body) is *damage*, and recovery refuses to start rather than serve a log
//! with acknowledged rows missing. A tail of zero bytes, which a file system
//! can leave after a crash mid-append, is torn too.
//!
//! Segments written before the magic existed (`[u32 length][u32 crc][u64
//! lsn]`, the checksum not covering the length) are still read, by the old
//! rule: any problem in the last record of the last segment is a torn tail.

use std::path::Path;

use super::CheckpointError;

/// The first bytes of every segment in this format.
pub const MAGIC: &[u8; 8] = b"EDDYLOG2";
/// Record header: length, its checksum, the body's checksum, LSN.
pub const HEADER: usize = 20;
/// The header of segments without the magic.
const OLD_HEADER: usize = 16;

/// Each valid record's LSN and payload range, and the bytes that are valid
/// (less than the file's length when a torn tail follows).
pub type Scanned = (usize, Vec<(u64, std::ops::Range<usize>)>);

/// Appends one record to `buffer`.
pub fn encode_record(buffer: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    let length = (payload.len() as u32).to_le_bytes();
    let mut body = crc32fast::Hasher::new();
    body.update(&lsn.to_le_bytes());
    body.update(payload);
    buffer.extend_from_slice(&length);
    buffer.extend_from_slice(&crc32fast::hash(&length).to_le_bytes());
    buffer.extend_from_slice(&body.finalize().to_le_bytes());
    buffer.extend_from_slice(&lsn.to_le_bytes());
    buffer.extend_from_slice(payload);
}

/// Checks the records of one segment. Only the last segment may end in a
/// torn tail; in any other, a problem is damage.
pub fn scan(bytes: &[u8], path: &Path, is_last: bool) -> Result<Scanned, CheckpointError> {
    if bytes.starts_with(MAGIC) {
        return Scan { bytes, path, is_last }.records(MAGIC.len());
    }
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) && is_last {
        return Ok((0, Vec::new())); // the magic itself was being written
    }
    scan_old(bytes, path, is_last)
}

struct Scan<'a> {
    bytes: &'a [u8],
    path: &'a Path,
    is_last: bool,
}

impl Scan<'_> {
    fn records(&self, mut at: usize) -> Result<Scanned, CheckpointError> {
        let bytes = self.bytes;
        let mut out = Vec::new();
        while at < bytes.len() {
            if bytes[at..].iter().all(|&b| b == 0) {
                return self.torn(at, out, "a zero-filled tail");
            }
            if bytes.len() - at < 8 {
                return self.torn(at, out, "a truncated record length");
            }
            let length = &bytes[at..at + 4];
            if crc32fast::hash(length) != read_u32(bytes, at + 4) {
                return Err(self.damage(at, "the record length fails its checksum"));
            }
            let end = at + HEADER + read_u32(bytes, at) as usize;
            if end > bytes.len() {
                return self.torn(at, out, "a record that runs past the end of the file");
            }
            if crc32fast::hash(&bytes[at + 12..end]) != read_u32(bytes, at + 8) {
                return Err(self.damage(at, "a complete record fails its checksum"));
            }
            out.push((read_u64(bytes, at + 12), at + HEADER..end));
            at = end;
        }
        Ok((at, out))
    }

    /// The valid records so far, if this is the last segment.
    fn torn(&self, at: usize, out: Vec<(u64, std::ops::Range<usize>)>, what: &str) -> Result<Scanned, CheckpointError> {
        match self.is_last {
            true => Ok((at, out)),
            false => Err(self.damage(at, &format!("{what}, in a segment that is not the last"))),
        }
    }

    fn damage(&self, at: usize, what: &str) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.path.to_path_buf(),
            what: format!(
                "{what} at byte {at}. Acknowledged rows may be in or after it, so Eddy will not start: restore the \
                 data directory from a backup, or, to accept losing the records from this one on, truncate the \
                 file to {at} bytes"
            ),
        }
    }
}

/// The scan of a segment without the magic, by the old rule.
fn scan_old(bytes: &[u8], path: &Path, is_last: bool) -> Result<Scanned, CheckpointError> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let torn = |what: &str, out: Vec<_>| -> Result<Scanned, CheckpointError> {
            match is_last {
                true => Ok((at, out)),
                false => {
                    Err(CheckpointError::Corrupt { path: path.to_path_buf(), what: format!("{what} at byte {at}") })
                }
            }
        };
        if bytes.len() - at < OLD_HEADER {
            return torn("a truncated record header", out);
        }
        let end = at + OLD_HEADER + read_u32(bytes, at) as usize;
        if end > bytes.len() {
            return torn("a truncated record", out);
        }
        if crc32fast::hash(&bytes[at + 8..end]) != read_u32(bytes, at + 4) {
            if end == bytes.len() {
                return torn("a record with a bad checksum", out);
            }
            let what = format!("the record at byte {at} fails its checksum");
            return Err(CheckpointError::Corrupt { path: path.to_path_buf(), what });
        }
        out.push((read_u64(bytes, at + 8), at + OLD_HEADER..end));
        at = end;
    }
    Ok((at, out))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_record(&mut bytes, 10 + i as u64, p);
        }
        bytes
    }

    fn path() -> &'static Path {
        Path::new("wal/00000000000000000010.log")
    }

    #[test]
    fn torn_tails_are_cut_and_everything_else_is_damage() {
        let good = segment(&[b"first record", b"second record", b"third"]);
        let (valid, records) = scan(&good, path(), true).unwrap();
        assert_eq!((valid, records.len()), (good.len(), 3));
        let second = records[1].0;
        assert_eq!(second, 11);

        // A write that never completed: the file ends inside the last record,
        // or inside its length, or in zeros.
        for cut in [good.len() - 2, good.len() - 9, good.len() - 19] {
            let (valid, records) = scan(&good[..cut], path(), true).unwrap();
            assert_eq!((records.len(), valid), (2, records[1].1.end), "cut at {cut}");
        }
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(scan(&zeros, path(), true).unwrap().1.len(), 3);
        assert!(scan(&good[..good.len() - 2], path(), false).is_err(), "only the last segment may be torn");

        // A flipped high byte in the middle record's length: damage, even
        // though the length now points past the end of the file.
        let start = records[1].1.start - HEADER;
        let mut damaged = good.clone();
        damaged[start + 3] ^= 0x40;
        let err = scan(&damaged, path(), true).unwrap_err().to_string();
        assert!(err.contains("length fails its checksum") && err.contains(&format!("byte {start}")), "{err}");
        assert!(err.contains("00000000000000000010.log"), "names the file: {err}");

        // A flipped byte in the last record's body: damage, not a torn tail.
        let mut damaged = good.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let err = scan(&damaged, path(), true).unwrap_err().to_string();
        assert!(err.contains("a complete record fails its checksum"), "{err}");
    }

    #[test]
    fn segments_without_the_magic_are_read_by_the_old_rule() {
        let mut old = Vec::new();
        for (lsn, payload) in [(1u64, &b"one"[..]), (2, b"two")] {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&lsn.to_le_bytes());
            crc.update(payload);
            old.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            old.extend_from_slice(&crc.finalize().to_le_bytes());
            old.extend_from_slice(&lsn.to_le_bytes());
            old.extend_from_slice(payload);
        }
        let (valid, records) = scan(&old, path(), true).unwrap();
        assert_eq!((valid, records.iter().map(|r| r.0).collect::<Vec<_>>()), (old.len(), vec![1, 2]));
        assert_eq!(&old[records[1].1.clone()], b"two");
        assert_eq!(scan(&MAGIC[..3], path(), true).unwrap().1.len(), 0, "a torn magic");
    }
}
