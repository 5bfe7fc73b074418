//! The apimachinery messages that have a JSON form of their own rather than an object of their
//! fields: `Time` and `MicroTime` (RFC 3339 strings), `Quantity` (its string), `IntOrString` (a
//! number or a string) and `FieldsV1` (raw JSON). Each reads its few fields by number and
//! refuses any other.

use serde_json::Value;

use super::wire::{Reader, WireValue};
use super::{DecodeError, next, text};

const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";

/// `Time {seconds = 1, nanos = 2}` as RFC 3339 (`Time` to the second, as upstream's JSON, and
/// `MicroTime` to the microsecond); the zero time is marshalled as an empty message, `null`.
pub fn time(bytes: &[u8], micro: bool) -> Result<Value, DecodeError> {
    let name = if micro { MICRO_TIME } else { TIME };
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = next(&mut reader, &name)? {
        match (number, value) {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = v as i32,
            _ => return Err(DecodeError::unexpected(name, number, value)),
        }
    }
    let invalid = || DecodeError::malformed(format!("{name} {seconds}s {nanos}ns is out of range"));
    let nanos = if micro { nanos - nanos % 1000 } else { 0 };
    let timestamp = jiff::Timestamp::new(seconds, nanos).map_err(|_| invalid())?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Value::String(timestamp.strftime(format).to_string()))
}

/// `Quantity {string = 1}` as its string.
pub fn quantity(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut text_value = "0".to_owned();
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = next(&mut reader, &QUANTITY)? {
        match (number, value) {
            (1, WireValue::Len(s)) => text_value = text(s),
            _ => return Err(DecodeError::unexpected(QUANTITY, number, value)),
        }
    }
    Ok(Value::String(text_value))
}

/// `IntOrString {type = 1, intVal = 2, strVal = 3}`: type 1 is a string, anything else an int.
pub fn int_or_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (mut is_string, mut int, mut string) = (false, 0i32, String::new());
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = next(&mut reader, &INT_OR_STRING)? {
        match (number, value) {
            (1, WireValue::Varint(v)) => is_string = v == 1,
            (2, WireValue::Varint(v)) => int = v as i32,
            (3, WireValue::Len(s)) => string = text(s),
            _ => return Err(DecodeError::unexpected(INT_OR_STRING, number, value)),
        }
    }
    Ok(if is_string {
        Value::String(string)
    } else {
        Value::from(int)
    })
}

/// `FieldsV1 {Raw = 1}`: the raw bytes are the JSON of the managed fields.
pub fn fields_v1(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut raw: &[u8] = b"";
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = next(&mut reader, &FIELDS_V1)? {
        match (number, value) {
            (1, WireValue::Len(bytes)) => raw = bytes,
            _ => return Err(DecodeError::unexpected(FIELDS_V1, number, value)),
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw)
        .map_err(|err| DecodeError::malformed(format!("{FIELDS_V1} is not JSON: {err}")))
}
