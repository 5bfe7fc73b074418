//! The protobuf wire format, read-only and without any schema: a [`Reader`] splits a message's
//! bytes into `(field number, WireValue)` pairs (varint, 64-bit, length-delimited, 32-bit), and
//! the caller, which knows the schema, decides what each value means.
//!
//! Everything is bounds-checked and returns a [`WireError`] on malformed input; nothing here
//! panics or allocates. Groups (wire types 3 and 4) are refused: no Kubernetes message uses them.

use std::fmt;

/// One field's value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// Wire type 0: int32, int64, uint*, bool, enum.
    Varint(u64),
    /// Wire type 1: fixed64, sfixed64, double.
    Fixed64(u64),
    /// Wire type 2: string, bytes, embedded messages, packed repeated scalars.
    Len(&'a [u8]),
    /// Wire type 5: fixed32, sfixed32, float.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type's name, for error messages.
    pub fn wire_type(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "64-bit",
            WireValue::Len(_) => "length-delimited",
            WireValue::Fixed32(_) => "32-bit",
        }
    }
}

/// Why a message's bytes are not valid protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside a tag, a varint or a length-delimited value.
    Truncated,
    /// A varint runs past ten bytes.
    VarintTooLong,
    /// Field number 0, or one above the protobuf maximum (2^29 - 1).
    BadFieldNumber(u64),
    /// Wire types 3 and 4 (groups, deprecated) or the undefined 6 and 7.
    UnsupportedWireType(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("the message ends in the middle of a field"),
            WireError::VarintTooLong => f.write_str("a varint is longer than 10 bytes"),
            WireError::BadFieldNumber(n) => write!(f, "invalid field number {n}"),
            WireError::UnsupportedWireType(t) => write!(f, "unsupported wire type {t}"),
        }
    }
}

/// A cursor over one message's bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// The next field, or `None` at the end of the message.
    pub fn field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(WireError::BadFieldNumber(number));
        }
        let number = u32::try_from(number).expect("checked against the maximum");
        let value = match tag & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                WireValue::Len(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.take_array()?)),
            other => return Err(WireError::UnsupportedWireType(other as u8)),
        };
        Ok(Some((number, value)))
    }

    /// A base-128 varint, least significant group first.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        if self.bytes.len() >= 10 {
            Err(WireError::VarintTooLong)
        } else {
            Err(WireError::Truncated)
        }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.bytes.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, WireError> {
        let mut reader = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(field) = reader.field()? {
            out.push(field);
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let bytes = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0x80, // 2: fixed64
            0x1a, 0x03, b'a', b'b', b'c', // 3: "abc"
            0x25, 0x01, 0x02, 0x03, 0x04, // 4: fixed32
            0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01, // 536870911 (the largest number): varint 1
        ];
        assert_eq!(
            fields(&bytes).unwrap(),
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(0x8000_0000_0000_0001)),
                (3, WireValue::Len(b"abc")),
                (4, WireValue::Fixed32(0x0403_0201)),
                ((1 << 29) - 1, WireValue::Varint(1)),
            ]
        );
    }

    #[test]
    fn negative_int32_is_a_ten_byte_varint() {
        let bytes = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let (_, value) = fields(&bytes).unwrap()[0];
        let WireValue::Varint(v) = value else {
            panic!("{value:?}")
        };
        assert_eq!(v as i64, -1);
        assert_eq!(v as i32, -1);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: &[(&[u8], WireError)] = &[
            (&[0x08], WireError::Truncated),
            (&[0x08, 0x80], WireError::Truncated),
            (&[0x0a, 0x05, b'a'], WireError::Truncated),
            (&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], WireError::Truncated),
            (&[0x11, 1, 2, 3], WireError::Truncated),
            (&[0x25, 1], WireError::Truncated),
            (&[0x00, 0x00], WireError::BadFieldNumber(0)),
            (&[0x0b], WireError::UnsupportedWireType(3)),
            (&[0x0e, 0x00], WireError::UnsupportedWireType(6)),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                WireError::VarintTooLong,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(fields(bytes).unwrap_err(), *expected, "{bytes:02x?}");
        }
    }
}
