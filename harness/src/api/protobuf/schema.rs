//! What the protobuf decoder knows about Kubernetes objects: for each protobuf [`Message`], its
//! fields' numbers, JSON names and [`Type`]s, and how Go marshals them ([`Shape`]). [`root`]
//! finds the message of a top-level object from its `apiVersion` and `kind`.
//!
//! The tables (`meta`, `apps`, `objects`, `pod`, `container`, `volume`) follow upstream's
//! `generated.proto` and `types.go` of Kubernetes 1.32 (`k8s.io/api` and
//! `k8s.io/apimachinery` v0.32), the version of the kubectl the harness is driven by, for every
//! message reachable from the kinds the store holds (plus autoscaling/v1 `Scale`). The in-tree
//! cloud and network volume plugins (`nfs`, `iscsi`, `awsElasticBlockStore`, ...) are left out:
//! the harness cannot mount them, and a body that uses one is answered with a 415 that names
//! the field, like any other field the tables do not know.
//!
//! Why [`Shape`] matters: Kubernetes protos are proto2 as gogo-protobuf writes them, so a Go
//! value field is sent even when it is zero (`generation: 0`, `selfLink: ""`), while its JSON
//! has `omitempty` and leaves it out. A Go pointer field (`replicas *int32`) is sent only when
//! set, so a zero there is meaningful (`replicas: 0`) and must be kept. The decoder needs to
//! know which is which to produce the JSON kubectl would have sent.

mod apps;
mod container;
mod meta;
mod objects;
mod pod;
mod volume;

use std::fmt;

/// A protobuf message type.
#[derive(Debug)]
pub struct Message {
    /// The proto package, e.g. `k8s.io.api.apps.v1`.
    pub package: &'static str,
    /// The message name, e.g. `DeploymentSpec`.
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    /// The field with that number, if the table has it.
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.number == number)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.package, self.name)
    }
}

/// One field of a [`Message`].
#[derive(Debug)]
pub struct Field {
    pub number: u32,
    /// The JSON name (empty for [`Shape::Inline`]).
    pub json: &'static str,
    pub shape: Shape,
    /// The type of the value (of each element for lists, of each value for maps).
    pub ty: Type,
}

/// How a field is marshalled, which decides what its absence or zero means in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A Go value with `omitempty`: sent even when zero, so a zero scalar (`""`, `0`, `false`)
    /// means "unset" and is left out of the JSON.
    One,
    /// A Go pointer (sent only when set) or a field without `omitempty`: a zero is kept.
    Kept,
    /// A repeated field: a JSON array (repeated numbers may also come packed).
    List,
    /// A `map<string, T>`: repeated entry messages `{key = 1, value = 2}`, a JSON object.
    Map,
    /// An embedded Go struct whose JSON fields are inlined into the parent's (`Volume`'s
    /// `VolumeSource`, `Probe`'s `ProbeHandler`); `ty` is a [`Type::Message`].
    Inline,
}

/// The type of a field's value.
#[derive(Clone, Copy, Debug)]
pub enum Type {
    String,
    /// Bytes, base64 in JSON (Secret `data`, ConfigMap `binaryData`).
    Bytes,
    Int32,
    Int64,
    Bool,
    /// meta/v1 `Time` `{seconds = 1, nanos = 2}`: RFC 3339 to the second; an empty message is
    /// the zero time, JSON `null`.
    Time,
    /// meta/v1 `MicroTime`: like `Time`, to the microsecond.
    MicroTime,
    /// resource `Quantity` `{string = 1}`: its string (`"100m"`).
    Quantity,
    /// intstr `IntOrString` `{type = 1, intVal = 2, strVal = 3}`: a JSON number or string.
    IntOrString,
    /// meta/v1 `FieldsV1` `{Raw = 1}`: the raw bytes are JSON.
    FieldsV1,
    Message(&'static Message),
}

pub const STRING: Type = Type::String;
pub const BYTES: Type = Type::Bytes;
pub const INT32: Type = Type::Int32;
pub const INT64: Type = Type::Int64;
pub const BOOL: Type = Type::Bool;
pub const TIME: Type = Type::Time;
pub const MICRO_TIME: Type = Type::MicroTime;
pub const QUANTITY: Type = Type::Quantity;
pub const INT_OR_STRING: Type = Type::IntOrString;
pub const FIELDS_V1: Type = Type::FieldsV1;

/// An embedded message.
pub const fn msg(message: &'static Message) -> Type {
    Type::Message(message)
}

/// The message of a top-level object, by its `apiVersion` and `kind`.
pub fn root(api_version: &str, kind: &str) -> Option<&'static Message> {
    let message = match (api_version, kind) {
        ("apps/v1", "Deployment") => &apps::DEPLOYMENT,
        ("apps/v1", "ReplicaSet") => &apps::REPLICA_SET,
        ("autoscaling/v1", "Scale") => &apps::SCALE,
        ("v1", "Pod") => &pod::POD,
        ("v1", "Service") => &objects::SERVICE,
        ("v1", "ConfigMap") => &objects::CONFIG_MAP,
        ("v1", "Secret") => &objects::SECRET,
        ("v1", "Namespace") => &objects::NAMESPACE,
        ("v1", "Endpoints") => &objects::ENDPOINTS,
        ("v1", "Event") => &objects::EVENT,
        _ => return None,
    };
    Some(message)
}

/// The tables' rows: `NAME = package "Message" { number "jsonName" shape type, ... }`, where
/// shape is `one`, `kept`, `list`, `map` or `inline` (see [`Shape`]).
macro_rules! messages {
    ($($konst:ident = $package:ident $name:literal {
        $($number:literal $json:literal $shape:ident $ty:expr,)*
    })*) => {
        $(
            pub static $konst: super::Message =
                super::Message {
                    package: messages!(@package $package),
                    name: $name,
                    fields: &[$(super::Field {
                        number: $number,
                        json: $json,
                        shape: messages!(@shape $shape),
                        ty: $ty,
                    },)*],
                };
        )*
    };
    (@package meta) => { "k8s.io.apimachinery.pkg.apis.meta.v1" };
    (@package core) => { "k8s.io.api.core.v1" };
    (@package apps) => { "k8s.io.api.apps.v1" };
    (@package autoscaling) => { "k8s.io.api.autoscaling.v1" };
    (@shape one) => { super::Shape::One };
    (@shape kept) => { super::Shape::Kept };
    (@shape list) => { super::Shape::List };
    (@shape map) => { super::Shape::Map };
    (@shape inline) => { super::Shape::Inline };
}
use messages;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const ROOTS: &[(&str, &str)] = &[
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("autoscaling/v1", "Scale"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Namespace"),
        ("v1", "Endpoints"),
        ("v1", "Event"),
    ];

    /// Every message reachable from the roots.
    fn reachable() -> Vec<&'static Message> {
        let mut seen: Vec<&'static Message> = Vec::new();
        let mut queue: Vec<&'static Message> = ROOTS
            .iter()
            .map(|(v, k)| root(v, k).expect("every root has a message"))
            .collect();
        while let Some(message) = queue.pop() {
            if seen.iter().any(|m| std::ptr::eq(*m, message)) {
                continue;
            }
            seen.push(message);
            for field in message.fields {
                if let Type::Message(inner) = field.ty {
                    queue.push(inner);
                }
            }
        }
        seen
    }

    /// The JSON names a message contributes to its object, inlined messages included.
    fn json_names(message: &Message) -> Vec<&'static str> {
        message
            .fields
            .iter()
            .flat_map(|f| match (f.shape, f.ty) {
                (Shape::Inline, Type::Message(inner)) => json_names(inner),
                _ => vec![f.json],
            })
            .collect()
    }

    #[test]
    fn tables_are_consistent() {
        let messages = reachable();
        assert!(messages.len() > 100, "{}", messages.len());
        let mut names = HashSet::new();
        for message in &messages {
            assert!(names.insert(message.to_string()), "{message} twice");
            let mut numbers = HashSet::new();
            for field in message.fields {
                assert!(
                    numbers.insert(field.number),
                    "{message}: field {} twice",
                    field.number
                );
                match field.shape {
                    Shape::Inline => assert!(
                        matches!(field.ty, Type::Message(_)) && field.json.is_empty(),
                        "{message}: inline field {} must be a message without a name",
                        field.number
                    ),
                    _ => assert!(!field.json.is_empty(), "{message}: field {}", field.number),
                }
                if field.shape == Shape::One || field.shape == Shape::Kept {
                    continue;
                }
                assert!(
                    !matches!(field.ty, Type::Time | Type::MicroTime | Type::FieldsV1),
                    "{message}: field {} cannot be repeated",
                    field.number
                );
            }
            let mut json = HashSet::new();
            for name in json_names(message) {
                assert!(json.insert(name), "{message}: JSON name {name} twice");
            }
        }
    }

    #[test]
    fn roots_are_found_by_type_meta() {
        assert_eq!(root("apps/v1", "Deployment").unwrap().name, "Deployment");
        assert_eq!(
            root("v1", "Namespace").unwrap().to_string(),
            "k8s.io.api.core.v1.Namespace"
        );
        assert!(root("apps/v1", "StatefulSet").is_none());
        assert!(root("v1", "Deployment").is_none());
    }
}
