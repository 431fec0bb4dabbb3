//! Bounds-checked reads of FlatBuffers tables and vectors over a byte slice.
//!
//! A table starts with an `i32` distance back to its vtable; the vtable lists, per field, the
//! field's `u16` offset inside the table (0 when absent). Reference fields (tables, vectors,
//! strings) hold a `u32` offset from the field itself; a vector is a `u32` length followed by
//! its elements. Every read here checks its bounds, so a corrupt file is an error, never a panic.

use anyhow::{bail, Context, Result};

/// A little-endian scalar stored in a table or vector.
pub trait Scalar: Copy {
    /// Bytes it occupies.
    const SIZE: usize;
    /// Decodes it from exactly `SIZE` bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! scalars {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
        }
    )*};
}

scalars!(u8, i8, u16, i32, u32, i64, u64, f32);

/// Reads a `T` at `pos`.
fn read<T: Scalar>(buf: &[u8], pos: usize) -> Result<T> {
    let bytes = pos
        .checked_add(T::SIZE)
        .and_then(|end| buf.get(pos..end))
        .with_context(|| format!("corrupt file: a {}-byte read at offset {pos} is past its end", T::SIZE))?;
    Ok(T::from_le(bytes))
}

/// Follows the `u32` reference stored at `pos`.
fn follow(buf: &[u8], pos: usize) -> Result<usize> {
    let target = pos.checked_add(read::<u32>(buf, pos)? as usize);
    match target {
        Some(t) if t < buf.len() => Ok(t),
        _ => bail!("corrupt file: the reference at offset {pos} points past its end"),
    }
}

/// A table in the buffer.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Table<'a> {
    /// The root table of a FlatBuffers file.
    pub fn root(buf: &'a [u8]) -> Result<Self> {
        Ok(Self { buf, pos: follow(buf, 0)? })
    }

    /// Position of field `index` in the buffer, if present.
    fn field(&self, index: u16) -> Result<Option<usize>> {
        let soffset = read::<i32>(self.buf, self.pos)?;
        let vtable =
            (self.pos as i64 - i64::from(soffset)).try_into().ok().filter(|&v: &usize| v < self.buf.len());
        let vtable =
            vtable.with_context(|| format!("corrupt file: the table at {} has no vtable", self.pos))?;
        let vtable_len = read::<u16>(self.buf, vtable)? as usize;
        let entry = 4 + 2 * index as usize;
        if entry + 2 > vtable_len {
            return Ok(None);
        }
        match read::<u16>(self.buf, vtable + entry)? {
            0 => Ok(None),
            offset => Ok(Some(self.pos + offset as usize)),
        }
    }

    /// Position of field `index` in the buffer (tests patch files through it).
    #[cfg(test)]
    pub fn position(&self, index: u16) -> Option<usize> {
        self.field(index).ok().flatten()
    }

    /// Scalar field `index`, or `default` when absent.
    pub fn scalar<T: Scalar>(&self, index: u16, default: T) -> Result<T> {
        match self.field(index)? {
            Some(pos) => read(self.buf, pos),
            None => Ok(default),
        }
    }

    /// Table field `index`.
    pub fn table(&self, index: u16) -> Result<Option<Table<'a>>> {
        Ok(match self.field(index)? {
            Some(pos) => Some(Table { buf: self.buf, pos: follow(self.buf, pos)? }),
            None => None,
        })
    }

    /// Vector field `index`.
    pub fn vector(&self, index: u16) -> Result<Option<Vector<'a>>> {
        let Some(pos) = self.field(index)? else { return Ok(None) };
        let start = follow(self.buf, pos)?;
        let len = read::<u32>(self.buf, start)? as usize;
        Ok(Some(Vector { buf: self.buf, pos: start + 4, len }))
    }

    /// Vector field `index` of scalars, empty when absent.
    pub fn scalars<T: Scalar>(&self, index: u16) -> Result<Vec<T>> {
        self.vector(index)?.map_or(Ok(Vec::new()), |v| v.scalars())
    }

    /// String field `index`, empty when absent; invalid UTF-8 is replaced.
    pub fn string(&self, index: u16) -> Result<String> {
        Ok(self
            .vector(index)?
            .map(|v| v.bytes())
            .transpose()?
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into())
    }
}

/// A vector in the buffer: `len` elements from `pos`.
#[derive(Clone, Copy, Debug)]
pub struct Vector<'a> {
    buf: &'a [u8],
    pos: usize,
    len: usize,
}

impl<'a> Vector<'a> {
    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements as bytes (a vector of `u8`).
    pub fn bytes(&self) -> Result<&'a [u8]> {
        self.elements(1)
    }

    /// The elements as scalars.
    pub fn scalars<T: Scalar>(&self) -> Result<Vec<T>> {
        Ok(self.elements(T::SIZE)?.chunks_exact(T::SIZE).map(T::from_le).collect())
    }

    /// Table element `i` of a vector of tables.
    pub fn table(&self, i: usize) -> Result<Table<'a>> {
        if i >= self.len {
            bail!("corrupt file: element {i} of a vector of {}", self.len);
        }
        self.elements(4)?;
        Ok(Table { buf: self.buf, pos: follow(self.buf, self.pos + 4 * i)? })
    }

    /// Every table of a vector of tables.
    pub fn tables(&self) -> Result<Vec<Table<'a>>> {
        (0..self.len).map(|i| self.table(i)).collect()
    }

    /// The element bytes, checked to lie inside the buffer.
    fn elements(&self, size: usize) -> Result<&'a [u8]> {
        self.len
            .checked_mul(size)
            .and_then(|n| self.pos.checked_add(n))
            .and_then(|end| self.buf.get(self.pos..end))
            .with_context(|| {
                format!(
                    "corrupt file: a vector of {} {size}-byte elements at {} runs past its end",
                    self.len, self.pos
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_defaults() {
        // Layout: [0] root offset → 16; [4] vtable (10 bytes) + 2 padding; [16] table:
        // soffset 12 (vtable at 4), u32 7, u32 reference to the vector at 28; [28] len 2, 5, -6.
        let mut b = Vec::new();
        b.extend_from_slice(&16u32.to_le_bytes());
        for v in [10u16, 12, 4, 0, 8] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&12i32.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes()); // at 24 → 28
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&5i32.to_le_bytes());
        b.extend_from_slice(&(-6i32).to_le_bytes());
        let t = Table::root(&b).unwrap();
        assert_eq!(t.scalar::<u32>(0, 0).unwrap(), 7);
        assert_eq!(t.scalar::<u32>(1, 9).unwrap(), 9);
        assert_eq!(t.scalar::<u32>(5, 3).unwrap(), 3, "fields past the vtable are absent");
        assert_eq!(t.scalars::<i32>(2).unwrap(), vec![5, -6]);
        assert!(t.vector(1).unwrap().is_none());
        // The vector claims more elements than the buffer holds.
        b[28] = 200;
        let t = Table::root(&b).unwrap();
        assert!(t.scalars::<i32>(2).unwrap_err().to_string().contains("runs past its end"));
    }

    #[test]
    fn truncated_buffers_are_errors() {
        assert!(Table::root(&[]).is_err());
        assert!(Table::root(&[200, 0, 0, 0]).is_err());
        let t = Table::root(&[4, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]).unwrap();
        assert!(t.scalar::<u8>(0, 0).is_err());
    }
}
