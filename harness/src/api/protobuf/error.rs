//! [`DecodeError`]: why a protobuf body could not be decoded and where in the object, answered
//! as 415 (valid protobuf that the tables do not cover) or 400 (malformed bytes).

use super::super::status::ApiError;
use super::schema::{Field, Message, Type};
use super::wire::WireValue;

/// Why a body could not be decoded, and where in the object.
#[derive(Debug)]
pub struct DecodeError {
    /// Valid protobuf the tables do not cover (415), rather than malformed bytes (400).
    unsupported: bool,
    message: String,
    /// The JSON path to the problem, innermost first.
    path: Vec<String>,
}

impl DecodeError {
    pub fn malformed(message: impl Into<String>) -> DecodeError {
        DecodeError {
            unsupported: false,
            message: message.into(),
            path: Vec::new(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> DecodeError {
        DecodeError {
            unsupported: true,
            ..DecodeError::malformed(message)
        }
    }

    pub fn unknown_field(message: &Message, number: u32, value: WireValue<'_>) -> DecodeError {
        DecodeError::unsupported(format!(
            "field {number} ({}) of {message} is not known to its protobuf decoder",
            value.wire_type()
        ))
    }

    /// A field of one of the small built-in messages (`Time`, `Quantity`, ...) that is not
    /// where it should be.
    pub fn unexpected(name: &str, number: u32, value: WireValue<'_>) -> DecodeError {
        DecodeError::unsupported(format!(
            "field {number} ({}) of {name} is not known to its protobuf decoder",
            value.wire_type()
        ))
    }

    pub fn wire_type(message: &Message, field: &Field, value: WireValue<'_>) -> DecodeError {
        let expected = match field.ty {
            Type::Int32 | Type::Int64 | Type::Bool => "varint",
            _ => "length-delimited",
        };
        let name = if field.json.is_empty() {
            String::new()
        } else {
            format!(" ({})", field.json)
        };
        DecodeError::malformed(format!(
            "field {}{name} of {message} has the {} wire type, expected {expected}",
            field.number,
            value.wire_type()
        ))
    }

    pub fn within(mut self, segment: &str) -> DecodeError {
        self.path.push(segment.to_owned());
        self
    }

    pub fn into_api_error(self) -> ApiError {
        let mut message = self.message;
        if !self.path.is_empty() {
            let path: Vec<&str> = self.path.iter().rev().map(String::as_str).collect();
            message = format!("{message} (at {})", path.join("."));
        }
        if self.unsupported {
            ApiError::unsupported_media_type(format!(
                "the harness cannot decode this protobuf body: {message}; send the object as \
                 JSON (application/json) instead"
            ))
        } else {
            ApiError::bad_request(format!("the protobuf body is malformed: {message}"))
        }
    }
}
