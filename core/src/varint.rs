//! LEB128 varints and zigzag encoding, shared by the wire format and the detector state codec.
//!
//! Readers never panic: a truncated or over-long varint is an error the caller maps to its own
//! typed error.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than ten bytes, or bits beyond 64.
    TooLong,
}

pub(crate) fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, zigzag(value));
}

/// Number of bytes [`put_u64`] writes for `value`.
pub(crate) fn len_u64(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A forward-only reader over a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, VarintError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8().ok_or(VarintError::Truncated)?;
            let payload = u64::from(byte & 0x7f);
            if shift == 63 && payload > 1 {
                return Err(VarintError::TooLong);
            }
            value |= payload << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(VarintError::TooLong)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, VarintError> {
        self.u64().map(unzigzag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_round_trips(value: u64) {
            let mut out = Vec::new();
            put_u64(&mut out, value);
            prop_assert_eq!(out.len(), len_u64(value));
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.u64(), Ok(value));
            prop_assert_eq!(reader.remaining(), 0);
        }

        #[test]
        fn i64_round_trips(value: i64) {
            let mut out = Vec::new();
            put_i64(&mut out, value);
            prop_assert_eq!(Reader::new(&out).i64(), Ok(value));
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        assert_eq!(Reader::new(&[0x80]).u64(), Err(VarintError::Truncated));
        assert_eq!(Reader::new(&[0xff; 11]).u64(), Err(VarintError::TooLong));
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(Reader::new(&too_big).u64(), Err(VarintError::TooLong));
    }
}
