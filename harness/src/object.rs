//! The typed objects the harness understands: [`Object`] is one of the real `k8s-openapi` types,
//! [`Kind`] names which, and [`ObjectKey`] addresses one in the store.
//!
//! Every kind the cluster supports is listed once, in the `kinds!` invocation below; adding a kind
//! there gives it conversions, discovery data and a place in the store.

use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// A Kubernetes type the store can hold, with the plumbing to go to and from [`Object`].
pub trait Resource:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Clone
    + Into<Object>
    + TryFrom<Object, Error = Object>
    + Send
    + Sync
    + 'static
{
    /// The [`Kind`] of this type.
    const KIND_ENUM: Kind;
}

macro_rules! kinds {
    ($($variant:ident: $plural:literal, $singular:literal, $namespaced:literal, [$($short:literal),*], all = $all:literal;)*) => {
        /// Which kind of object, with the names the API and kubectl use for it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($variant,)*
        }

        /// One object of any supported kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $($variant($variant),)*
        }

        impl Kind {
            /// Every supported kind, in a stable order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The `kind` field value, e.g. `Deployment`.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => <$variant as k8s_openapi::Resource>::KIND,)* }
            }

            /// The `apiVersion` field value, e.g. `apps/v1`.
            pub fn api_version(self) -> &'static str {
                match self { $(Kind::$variant => <$variant as k8s_openapi::Resource>::API_VERSION,)* }
            }

            /// The API group, empty for the core group.
            pub fn group(self) -> &'static str {
                match self { $(Kind::$variant => <$variant as k8s_openapi::Resource>::GROUP,)* }
            }

            /// The plural resource name used in URLs, e.g. `deployments`.
            pub fn plural(self) -> &'static str {
                match self { $(Kind::$variant => $plural,)* }
            }

            /// The singular resource name, e.g. `deployment`.
            pub fn singular(self) -> &'static str {
                match self { $(Kind::$variant => $singular,)* }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn namespaced(self) -> bool {
                match self { $(Kind::$variant => $namespaced,)* }
            }

            /// kubectl's short names, e.g. `deploy`.
            pub fn short_names(self) -> &'static [&'static str] {
                match self { $(Kind::$variant => &[$($short),*],)* }
            }

            /// Whether `kubectl get all` includes this kind.
            pub fn in_category_all(self) -> bool {
                match self { $(Kind::$variant => $all,)* }
            }
        }

        impl Object {
            /// The kind of this object.
            pub fn kind(&self) -> Kind {
                match self { $(Object::$variant(_) => Kind::$variant,)* }
            }

            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self { $(Object::$variant(o) => &o.metadata,)* }
            }

            /// The object's metadata, mutably.
            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Object::$variant(o) => &mut o.metadata,)* }
            }

            /// The object as JSON, with `apiVersion` and `kind`.
            pub fn to_json(&self) -> Value {
                let value = match self {
                    $(Object::$variant(o) => serde_json::to_value(o),)*
                };
                value.expect("k8s-openapi types always serialize")
            }

            /// Reads an object of the given kind from JSON. Unknown fields are ignored here;
            /// the manifest loader reports them.
            pub fn from_json(kind: Kind, value: Value) -> Result<Object, serde_json::Error> {
                Ok(match kind {
                    $(Kind::$variant => Object::$variant(serde_json::from_value(value)?),)*
                })
            }
        }

        $(
            impl Resource for $variant {
                const KIND_ENUM: Kind = Kind::$variant;
            }

            impl From<$variant> for Object {
                fn from(o: $variant) -> Object {
                    Object::$variant(o)
                }
            }

            impl TryFrom<Object> for $variant {
                type Error = Object;
                fn try_from(o: Object) -> Result<$variant, Object> {
                    match o {
                        Object::$variant(inner) => Ok(inner),
                        other => Err(other),
                    }
                }
            }
        )*
    };
}

kinds! {
    Namespace: "namespaces", "namespace", false, ["ns"], all = false;
    Pod: "pods", "pod", true, ["po"], all = true;
    ReplicaSet: "replicasets", "replicaset", true, ["rs"], all = true;
    Deployment: "deployments", "deployment", true, ["deploy"], all = true;
    Service: "services", "service", true, ["svc"], all = true;
    Endpoints: "endpoints", "endpoints", true, ["ep"], all = false;
    EndpointSlice: "endpointslices", "endpointslice", true, [], all = false;
    ConfigMap: "configmaps", "configmap", true, ["cm"], all = false;
    Secret: "secrets", "secret", true, [], all = false;
    Event: "events", "event", true, ["ev"], all = false;
}

impl Kind {
    /// Finds a kind by its `kind` name (`Deployment`), plural (`deployments`), singular or short
    /// name (`deploy`), case-insensitively.
    pub fn parse(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL.iter().copied().find(|k| {
            k.name().eq_ignore_ascii_case(&lower)
                || k.plural() == lower
                || k.singular() == lower
                || k.short_names().contains(&lower.as_str())
        })
    }

    /// Finds a kind from a manifest's `apiVersion` and `kind`.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.api_version() == api_version && k.name() == kind)
    }

    /// `Kind (apiVersion)` for every supported kind, for error messages.
    pub fn supported_list() -> String {
        Kind::ALL
            .iter()
            .map(|k| format!("{} ({})", k.name(), k.api_version()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an object lives: its kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object of kind `kind`; `namespace` is dropped for cluster-scoped kinds.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        let namespace = if kind.namespaced() { namespace } else { "" };
        ObjectKey {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `deployment "hostbot"` or `deployment "web" in namespace "shop"`, as errors name objects.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.kind.singular(), self.name)?;
        if !self.namespace.is_empty() && self.namespace != "default" {
            write!(f, " in namespace \"{}\"", self.namespace)?;
        }
        Ok(())
    }
}

impl Object {
    /// The object's name (empty if unset).
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace (empty if unset).
    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }

    /// Where this object lives.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.kind(), self.namespace(), self.name())
    }

    /// The object's uid (empty if unset).
    pub fn uid(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or_default()
    }

    /// The object's labels.
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        static EMPTY: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        self.meta().labels.as_ref().unwrap_or(&EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_names() {
        assert_eq!(Kind::parse("deploy"), Some(Kind::Deployment));
        assert_eq!(Kind::parse("Deployments"), Some(Kind::Deployment));
        assert_eq!(Kind::parse("rs"), Some(Kind::ReplicaSet));
        assert_eq!(Kind::parse("po"), Some(Kind::Pod));
        assert_eq!(Kind::parse("svc"), Some(Kind::Service));
        assert_eq!(Kind::parse("cm"), Some(Kind::ConfigMap));
        assert_eq!(Kind::parse("ingress"), None);
    }

    #[test]
    fn json_round_trip_keeps_type_meta() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("hostbot".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let json = Object::from(pod).to_json();
        assert_eq!(json["kind"], "Pod");
        assert_eq!(json["apiVersion"], "v1");
        let back = Object::from_json(Kind::Pod, json).unwrap();
        assert_eq!(back.name(), "hostbot");
        assert_eq!(
            Kind::from_type_meta("apps/v1", "Deployment"),
            Some(Kind::Deployment)
        );
    }
}
