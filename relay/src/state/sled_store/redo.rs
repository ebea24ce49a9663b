//! The redo record of a batch being written: its records as (tree, key, value) triples, framed with lengths.
//! Written in one atomic insert before the batch's records and removed after them, so the records of a batch a
//! crash interrupted are written again at the next open (sled recovers a prefix of its log: when any record of the
//! batch reached the disk, so did the redo record written before it).

use crate::state::{StateError, StateResult};

/// One record write: a tree (by position), a key and a value (`None`: removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encoded {
    pub(super) tree: usize,
    pub(super) key: Vec<u8>,
    pub(super) value: Option<Vec<u8>>,
}

fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// `[count u32]`, then `[tree u8][key len u32][key][0 | 1 + value len u32 + value]` per record.
pub(super) fn encode(ops: &[Encoded]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|o| 10 + o.key.len() + o.value.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&len32(ops.len()));
    for op in ops {
        out.push(u8::try_from(op.tree).unwrap_or(u8::MAX));
        out.extend_from_slice(&len32(op.key.len()));
        out.extend_from_slice(&op.key);
        match &op.value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&len32(v.len()));
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> StateResult<&'a [u8]> {
        if self.0.len() < n {
            return Err(StateError::Corrupt("redo record (truncated)".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> StateResult<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn bytes(&mut self) -> StateResult<Vec<u8>> {
        let mut len = [0; 4];
        len.copy_from_slice(self.take(4)?);
        let n = usize::try_from(u32::from_be_bytes(len))
            .map_err(|_| StateError::Corrupt("redo record (length)".into()))?;
        Ok(self.take(n)?.to_vec())
    }
}

/// The records of a redo record.
pub(super) fn decode(bytes: &[u8]) -> StateResult<Vec<Encoded>> {
    let mut r = Reader(bytes);
    let mut count = [0; 4];
    count.copy_from_slice(r.take(4)?);
    let count = u32::from_be_bytes(count);
    let mut ops = Vec::new();
    for _ in 0..count {
        let tree = usize::from(r.byte()?);
        let key = r.bytes()?;
        let value = match r.byte()? {
            0 => None,
            1 => Some(r.bytes()?),
            _ => return Err(StateError::Corrupt("redo record (value tag)".into())),
        };
        ops.push(Encoded { tree, key, value });
    }
    if !r.0.is_empty() {
        return Err(StateError::Corrupt("redo record (trailing bytes)".into()));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests;
