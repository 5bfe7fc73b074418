//! Strict decoding, as kubectl's `--validate=strict` does it: a manifest's JSON is read into
//! the typed `k8s-openapi` object through a deserializer that knows where it is, so that
//!
//! - every field the type does not know is reported with its path (k8s-openapi's own
//!   deserializers skip unknown keys through `IgnoredAny`, which is where this deserializer
//!   notices them, together with the names the enclosing struct does know, for a suggestion);
//! - a type error (a string where an integer belongs) names the field it happened in.
//!
//! This catches exactly what the typed object drops, so int-or-string values, quantities,
//! empty maps and explicit nulls raise no false alarms. A `null` value is read as an absent
//! field, as Go's decoder does for pointers, slices and maps.

use std::cell::RefCell;
use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{Map, Value};

use crate::object::{Kind, Object};

/// A field the target type does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// Its full path, e.g. `spec.template.spec.containers[0].imagePullPolcy`.
    pub path: String,
    /// The fields the enclosing object does have.
    pub known: &'static [&'static str],
}

/// A value of the wrong type, or otherwise unreadable, at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Reads `value` as a `T`, returning it with the unknown fields found on the way.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<(T, Vec<UnknownField>), TypeError> {
    let state = State::default();
    let node = Node {
        value,
        path: String::new(),
        known: &[],
        state: &state,
    };
    match T::deserialize(node) {
        Ok(typed) => Ok((typed, state.unknown.into_inner())),
        Err(err) => Err(TypeError {
            path: state.error_path.into_inner().unwrap_or_default(),
            message: err.to_string(),
        }),
    }
}

/// Reads `value` as an object of `kind` (its apiVersion and kind must match), returning it
/// with the unknown fields found on the way.
pub fn decode_object(kind: Kind, value: &Value) -> Result<(Object, Vec<UnknownField>), TypeError> {
    fn typed<T: DeserializeOwned + Into<Object>>(
        value: &Value,
    ) -> Result<(Object, Vec<UnknownField>), TypeError> {
        decode::<T>(value).map(|(t, unknown)| (t.into(), unknown))
    }
    match kind {
        Kind::Namespace => typed::<Namespace>(value),
        Kind::Pod => typed::<Pod>(value),
        Kind::ReplicaSet => typed::<ReplicaSet>(value),
        Kind::Deployment => typed::<Deployment>(value),
        Kind::Service => typed::<Service>(value),
        Kind::Endpoints => typed::<Endpoints>(value),
        Kind::EndpointSlice => typed::<EndpointSlice>(value),
        Kind::ConfigMap => typed::<ConfigMap>(value),
        Kind::Secret => typed::<Secret>(value),
        Kind::Event => typed::<Event>(value),
    }
}

#[derive(Default)]
struct State {
    unknown: RefCell<Vec<UnknownField>>,
    /// Where the first (innermost) error happened.
    error_path: RefCell<Option<String>>,
}

/// One value being read, with its path and the known fields of the object holding it.
struct Node<'a> {
    value: &'a Value,
    path: String,
    known: &'static [&'static str],
    state: &'a State,
}

/// `parent.field` for a struct's field, `parent[key]` for a map's entry (labels, data keys),
/// as the API server writes field paths.
fn key_path(parent: &str, key: &str, is_struct: bool) -> String {
    match (parent.is_empty(), is_struct) {
        (true, _) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (false, false) => format!("{parent}[{key}]"),
    }
}

impl<'a> Node<'a> {
    fn record<T>(&self, result: Result<T, serde_json::Error>) -> Result<T, serde_json::Error> {
        if result.is_err() {
            let mut slot = self.state.error_path.borrow_mut();
            if slot.is_none() {
                *slot = Some(self.path.clone());
            }
        }
        result
    }

    fn map<V: Visitor<'a>>(
        self,
        map: &'a Map<String, Value>,
        known: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let access = MapAccess {
            iter: map.iter(),
            pending: None,
            path: &self.path,
            known,
            state: self.state,
        };
        let result = visitor.visit_map(access);
        self.record(result)
    }
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(SeqAccess {
                iter: items.iter().enumerate(),
                path: &self.path,
                state: self.state,
            }),
            Value::Object(map) => return self.map(map, &[], visitor),
        };
        self.record(result)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => self.map(map, fields, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let result = match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => return self.deserialize_any(visitor),
        };
        self.record(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.state.unknown.borrow_mut().push(UnknownField {
            path: self.path.clone(),
            known: self.known,
        });
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct MapAccess<'a, 'p> {
    iter: serde_json::map::Iter<'a>,
    pending: Option<(&'a String, &'a Value)>,
    path: &'p str,
    known: &'static [&'static str],
    state: &'a State,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        for (key, value) in self.iter.by_ref() {
            if value.is_null() {
                continue;
            }
            self.pending = Some((key, value));
            let key = de::value::BorrowedStrDeserializer::<serde_json::Error>::new(key);
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked for before its key"))?;
        seed.deserialize(Node {
            value,
            path: key_path(self.path, key, !self.known.is_empty()),
            known: self.known,
            state: self.state,
        })
    }
}

struct SeqAccess<'a, 'p> {
    iter: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    path: &'p str,
    state: &'a State,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de, '_> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let Some((i, value)) = self.iter.next() else {
            return Ok(None);
        };
        seed.deserialize(Node {
            value,
            path: format!("{}[{i}]", self.path),
            known: &[],
            state: self.state,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(container: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "hostbot", "labels": {"app.kubernetes.io/name": "hostbot"}, "creationTimestamp": null},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "hostbot"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": "hostbot"}, "annotations": {}},
                    "spec": {"containers": [container], "volumes": [{"name": "v", "configMap": {"name": "c", "defaultMode": 420}}]}
                }
            }
        })
    }

    #[test]
    fn valid_objects_have_no_unknown_fields() {
        let container = json!({
            "name": "hostbot", "image": "hostbot:1", "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": "PORT", "value": "8080"}, {"name": "EMPTY"}],
            "resources": {"limits": {"cpu": 1, "memory": "64Mi"}, "requests": {"cpu": "100m"}},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 8080}},
            "securityContext": {}, "args": []
        });
        let (d, unknown) = decode::<Deployment>(&deployment(container)).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(d.spec.unwrap().replicas, Some(3));
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selector": {"app": "x"}}});
        assert!(decode::<Service>(&svc).unwrap().1.is_empty());
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "y"}});
        assert!(decode::<Secret>(&secret).unwrap().1.is_empty());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"my.key": "v"}, "immutable": false});
        assert!(decode::<ConfigMap>(&cm).unwrap().1.is_empty());
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path_and_siblings() {
        let container =
            json!({"name": "hostbot", "image": "hostbot:1", "imagePullPolcy": "Always"});
        let mut value = deployment(container);
        value["spec"]["replica"] = json!(2);
        value["metadata"]["label"] = json!({"a": "b"});
        let (_, unknown) = decode::<Deployment>(&value).unwrap();
        let paths: Vec<&str> = unknown.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.label",
                "spec.replica",
                "spec.template.spec.containers[0].imagePullPolcy"
            ]
        );
        assert!(unknown[1].known.contains(&"replicas"));
        assert!(unknown[2].known.contains(&"imagePullPolicy"));
    }

    #[test]
    fn nulls_read_as_absent() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": null, "bogus": null},
            "spec": {"containers": [{"name": "c", "image": "i", "env": null}]}});
        let (pod, unknown) = decode::<Pod>(&pod).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(pod.metadata.labels, None);
    }

    #[test]
    fn type_errors_name_the_field() {
        let container = json!({"name": "hostbot", "image": "hostbot:1", "env": [{"name": "PORT", "value": 8080}]});
        let err = decode::<Deployment>(&deployment(container)).unwrap_err();
        assert_eq!(err.path, "spec.template.spec.containers[0].env[0].value");
        assert_eq!(
            err.message,
            "invalid type: integer `8080`, expected a string"
        );
        let mut value = deployment(json!({"name": "c", "image": "i"}));
        value["spec"]["replicas"] = json!("three");
        let err = decode::<Deployment>(&value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.replicas: invalid type: string \"three\", expected i32"
        );
        value["spec"]["replicas"] = json!(1);
        value["metadata"]["labels"] = json!({"app.kubernetes.io/version": 1.5});
        let err = decode::<Deployment>(&value).unwrap_err();
        assert_eq!(err.path, "metadata.labels[app.kubernetes.io/version]");
        value["metadata"]["labels"] = json!({"version": 2});
        assert_eq!(
            decode::<Deployment>(&value).unwrap_err().path,
            "metadata.labels[version]"
        );
        value["metadata"]["labels"] = json!(["a"]);
        assert_eq!(
            decode::<Deployment>(&value).unwrap_err().path,
            "metadata.labels"
        );
    }
}
