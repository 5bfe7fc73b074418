//! Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), turned into the
//! JSON the same object has, so that they go through the same path as JSON bodies (type meta,
//! strict field checks, validation, defaulting). [`decode`] is the entry point.
//!
//! Why: kubectl's typed commands (`kubectl create deployment|configmap|secret|service|namespace`)
//! send their object as protobuf and, unlike a discovery GET, do not fall back to JSON when the
//! server answers 415. The harness keeps its objects as k8s-openapi types, which only speak JSON,
//! so instead of pulling in generated protobuf types it reads the wire format by hand
//! ([`wire`]) against a table of field numbers, JSON names and types ([`schema`]); `builtin`
//! reads the apimachinery types that have a JSON form of their own (`Time`, `Quantity`,
//! `IntOrString`, ...), and `error` says what went wrong and where.
//!
//! A body is the 4-byte magic `k8s\0` and then a `runtime.Unknown` envelope:
//! `{typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3, contentType = 4}`,
//! with the object's message in `raw`. The JSON is what Go's encoder would print for the object
//! the client marshalled: zero scalars of `omitempty` value fields are left out, pointers keep
//! their zeros (see [`schema::Shape`]), bytes become base64, `Time` RFC 3339 (or `null`),
//! `Quantity` its string, `IntOrString` a number or a string.
//!
//! A field the tables do not know is answered with 415 naming the message, the field number and
//! where it is in the object (`send it as JSON instead`); malformed bytes with 400.

mod builtin;
mod error;
mod schema;
mod wire;

use std::fmt;

use base64::Engine;
use serde_json::{Map, Value};

use super::status::ApiError;
use error::DecodeError;
use schema::{Field, Message, Shape, Type};
use wire::{Reader, WireValue};

/// The `Content-Type` of a protobuf body.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";

/// Decodes a protobuf request body into the object's JSON (with `kind` and `apiVersion`).
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    decode_object(body).map_err(DecodeError::into_api_error)
}

fn decode_object(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        DecodeError::malformed("it does not start with the Kubernetes protobuf prefix \"k8s\\0\"")
    })?;
    let envelope = Envelope::read(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(DecodeError::unsupported(format!(
            "content encoding {:?} is not supported",
            envelope.content_encoding
        )));
    }
    if !matches!(envelope.content_type.as_str(), "" | MEDIA_TYPE) {
        return Err(DecodeError::unsupported(format!(
            "an envelope holding {:?} is not supported",
            envelope.content_type
        )));
    }
    let (api_version, kind) = (envelope.api_version, envelope.kind);
    let message = schema::root(&api_version, &kind).ok_or_else(|| {
        DecodeError::unsupported(format!(
            "objects of kind {kind:?} (apiVersion {api_version:?}) are not known to its protobuf \
             decoder"
        ))
    })?;
    let mut object = Map::new();
    object.insert("kind".to_owned(), Value::String(kind));
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    read_message(message, envelope.raw, &mut object)?;
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` around the object.
#[derive(Debug, Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Envelope<'a> {
    fn read(bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        let mut envelope = Envelope::default();
        let mut reader = Reader::new(bytes);
        while let Some((number, value)) = next(&mut reader, &UNKNOWN)? {
            match (number, value) {
                (1, WireValue::Len(type_meta)) => {
                    let mut reader = Reader::new(type_meta);
                    while let Some((number, value)) = next(&mut reader, &TYPE_META)? {
                        match (number, value) {
                            (1, WireValue::Len(s)) => envelope.api_version = text(s),
                            (2, WireValue::Len(s)) => envelope.kind = text(s),
                            _ => return Err(DecodeError::unexpected(TYPE_META, number, value)),
                        }
                    }
                }
                (2, WireValue::Len(raw)) => envelope.raw = raw,
                (3, WireValue::Len(s)) => envelope.content_encoding = text(s),
                (4, WireValue::Len(s)) => envelope.content_type = text(s),
                _ => return Err(DecodeError::unexpected(UNKNOWN, number, value)),
            }
        }
        Ok(envelope)
    }
}

/// Reads the fields of `message` from `bytes` into `out` (merging, as protobuf does when a
/// message comes in several pieces).
fn read_message(
    message: &'static Message,
    bytes: &[u8],
    out: &mut Map<String, Value>,
) -> Result<(), DecodeError> {
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = next(&mut reader, message)? {
        let Some(field) = message.field(number) else {
            return Err(DecodeError::unknown_field(message, number, value));
        };
        read_field(message, field, value, out)?;
    }
    Ok(())
}

fn read_field(
    message: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
    out: &mut Map<String, Value>,
) -> Result<(), DecodeError> {
    let json = field.json;
    match (field.shape, field.ty) {
        (Shape::Inline, Type::Message(inner)) => {
            read_message(inner, len(message, field, value)?, out)
        }
        (Shape::One | Shape::Kept, Type::Message(inner)) => {
            let bytes = len(message, field, value)?;
            read_message(inner, bytes, object_at(out, json)).map_err(|e| e.within(json))
        }
        // Inline fields are messages (the schema tests check it): `Inline` is here only to keep
        // the match exhaustive.
        (Shape::One | Shape::Kept | Shape::Inline, ty) => {
            let decoded = read_value(message, field, ty, value).map_err(|e| e.within(json))?;
            if field.shape == Shape::One && is_zero_scalar(ty, &decoded) {
                out.remove(json);
            } else {
                out.insert(json.to_owned(), decoded);
            }
            Ok(())
        }
        (Shape::List, ty) => {
            let items = array_at(out, json);
            match (ty, value) {
                // Repeated numbers may come packed: one length-delimited run of varints.
                (Type::Int32 | Type::Int64 | Type::Bool, WireValue::Len(bytes)) => {
                    let mut packed = Reader::new(bytes);
                    while !packed.is_empty() {
                        let v = packed.varint().map_err(|e| {
                            DecodeError::malformed(format!("{message}: {e}")).within(json)
                        })?;
                        items.push(scalar(ty, v));
                    }
                    Ok(())
                }
                _ => {
                    let index = items.len();
                    let item = read_value(message, field, ty, value)
                        .map_err(|e| e.within(&format!("{json}[{index}]")))?;
                    items.push(item);
                    Ok(())
                }
            }
        }
        (Shape::Map, ty) => {
            let (key, item) =
                read_map_entry(message, field, ty, value).map_err(|e| e.within(json))?;
            object_at(out, json).insert(key, item);
            Ok(())
        }
    }
}

/// The object under `key`, made (or replacing a value of another type) if need be.
fn object_at<'m>(out: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let entry = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("made an object above")
}

/// The array under `key`, made (or replacing a value of another type) if need be.
fn array_at<'m>(out: &'m mut Map<String, Value>, key: &str) -> &'m mut Vec<Value> {
    let entry = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    entry.as_array_mut().expect("made an array above")
}

/// One `{key = 1, value = 2}` entry of a map field; a missing part is its zero value.
fn read_map_entry(
    message: &'static Message,
    field: &'static Field,
    ty: Type,
    value: WireValue<'_>,
) -> Result<(String, Value), DecodeError> {
    let name = format!("{message}.{}Entry", field.json);
    let mut reader = Reader::new(len(message, field, value)?);
    let (mut key, mut item) = (String::new(), None);
    while let Some((number, value)) = next(&mut reader, &name)? {
        match (number, value) {
            (1, WireValue::Len(s)) => key = text(s),
            (2, value) => item = Some(read_value(message, field, ty, value)?),
            _ => return Err(DecodeError::unexpected(&name, number, value)),
        }
    }
    let item = item.unwrap_or_else(|| zero_of(ty));
    Ok((key, item))
}

/// A singular value of type `ty`.
fn read_value(
    message: &'static Message,
    field: &'static Field,
    ty: Type,
    value: WireValue<'_>,
) -> Result<Value, DecodeError> {
    match (ty, value) {
        (Type::String, WireValue::Len(bytes)) => Ok(Value::String(text(bytes))),
        (Type::Bytes, WireValue::Len(bytes)) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )),
        (Type::Int32 | Type::Int64 | Type::Bool, WireValue::Varint(v)) => Ok(scalar(ty, v)),
        (Type::Time, WireValue::Len(bytes)) => builtin::time(bytes, false),
        (Type::MicroTime, WireValue::Len(bytes)) => builtin::time(bytes, true),
        (Type::Quantity, WireValue::Len(bytes)) => builtin::quantity(bytes),
        (Type::IntOrString, WireValue::Len(bytes)) => builtin::int_or_string(bytes),
        (Type::FieldsV1, WireValue::Len(bytes)) => builtin::fields_v1(bytes),
        (Type::Message(inner), WireValue::Len(bytes)) => {
            let mut map = Map::new();
            read_message(inner, bytes, &mut map)?;
            Ok(Value::Object(map))
        }
        (_, value) => Err(DecodeError::wire_type(message, field, value)),
    }
}

/// The bytes of a length-delimited value.
fn len<'a>(
    message: &'static Message,
    field: &'static Field,
    value: WireValue<'a>,
) -> Result<&'a [u8], DecodeError> {
    match value {
        WireValue::Len(bytes) => Ok(bytes),
        other => Err(DecodeError::wire_type(message, field, other)),
    }
}

/// A varint as the JSON of an int32, int64 or bool. An int32 is sign-extended to 64 bits on
/// the wire, so its low 32 bits are the value.
fn scalar(ty: Type, v: u64) -> Value {
    match ty {
        Type::Int32 => Value::from(v as i32),
        Type::Bool => Value::Bool(v != 0),
        _ => Value::from(v as i64),
    }
}

/// Whether a decoded scalar is Go's zero value, which `omitempty` leaves out of the JSON.
fn is_zero_scalar(ty: Type, value: &Value) -> bool {
    match (ty, value) {
        (Type::String | Type::Bytes, Value::String(s)) => s.is_empty(),
        (Type::Int32 | Type::Int64, Value::Number(n)) => n.as_i64() == Some(0),
        (Type::Bool, Value::Bool(b)) => !b,
        _ => false,
    }
}

/// The JSON of a map value that the entry left out.
fn zero_of(ty: Type) -> Value {
    match ty {
        Type::String | Type::Bytes => Value::String(String::new()),
        Type::Int32 | Type::Int64 | Type::IntOrString => Value::from(0),
        Type::Bool => Value::Bool(false),
        Type::Quantity => Value::String("0".to_owned()),
        Type::Time | Type::MicroTime | Type::FieldsV1 => Value::Null,
        Type::Message(_) => Value::Object(Map::new()),
    }
}

/// A protobuf string (Go's JSON encoder, too, replaces invalid UTF-8 with U+FFFD).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The next field of the message named `name`.
fn next<'a>(
    reader: &mut Reader<'a>,
    name: &dyn fmt::Display,
) -> Result<Option<(u32, WireValue<'a>)>, DecodeError> {
    reader
        .field()
        .map_err(|err| DecodeError::malformed(format!("{name}: {err}")))
}

#[cfg(test)]
mod tests;
