//! Validation of `discovery.k8s.io/v1` EndpointSlices (upstream
//! `pkg/apis/discovery/validation`): the address type, the endpoints and their addresses, the
//! ports. The controller's slices always pass; the rules matter for hand-written ones, which
//! kubectl reads too (`describe service` takes every endpoint's first address and every port's
//! name, so a slice without them must not be stored).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::container::PROTOCOLS;
use super::field::{Errors, Path};
use super::syntax;

/// The address types upstream accepts.
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
/// Upstream's `maxEndpoints`, `maxAddresses` and `maxPorts`.
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;

/// Validates an EndpointSlice's address type, endpoints and ports.
pub(super) fn endpoint_slice(slice: &EndpointSlice, errs: &mut Errors) {
    let address_type = slice.address_type.as_str();
    errs.one_of(&Path::new("addressType"), Some(address_type), ADDRESS_TYPES);
    let endpoints = Path::new("endpoints");
    if slice.endpoints.len() > MAX_ENDPOINTS {
        errs.too_many(&endpoints, slice.endpoints.len(), MAX_ENDPOINTS);
    } else {
        for (i, endpoint) in slice.endpoints.iter().enumerate() {
            let at = endpoints.index(i).child("addresses");
            match endpoint.addresses.len() {
                0 => errs.required(&at, "must contain at least 1 address"),
                n if n > MAX_ADDRESSES => errs.too_many(&at, n, MAX_ADDRESSES),
                _ => {}
            }
            for (j, address) in endpoint.addresses.iter().enumerate() {
                let problem = match address_type {
                    "IPv4" => address
                        .parse::<Ipv4Addr>()
                        .is_err()
                        .then(|| vec!["must be a valid IPv4 address".to_owned()]),
                    "IPv6" => address
                        .parse::<Ipv6Addr>()
                        .is_err()
                        .then(|| vec!["must be a valid IPv6 address".to_owned()]),
                    "FQDN" => Some(syntax::dns1123_subdomain(address)),
                    _ => None,
                };
                errs.invalid_each(&at.index(j), address, problem.unwrap_or_default());
            }
            if let Some(hostname) = &endpoint.hostname {
                let path = endpoints.index(i).child("hostname");
                errs.invalid_each(&path, hostname, syntax::dns1123_label(hostname));
            }
        }
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    let path = Path::new("ports");
    if ports.len() > MAX_PORTS {
        errs.too_many(&path, ports.len(), MAX_PORTS);
        return;
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = path.index(i);
        let name = port.name.as_deref().unwrap_or_default();
        if !name.is_empty() {
            errs.invalid_each(&at.child("name"), name, syntax::dns1123_label(name));
        }
        if !names.insert(name) {
            errs.duplicate(&at.child("name"), name);
        }
        errs.one_of(&at.child("protocol"), port.protocol.as_deref(), PROTOCOLS);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::object::{Kind, Object};

    fn slice(changes: Value) -> Value {
        let mut value = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abcde", "namespace": "default"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.1.0.2"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        });
        for (key, change) in changes.as_object().unwrap() {
            value[key] = change.clone();
        }
        value
    }

    fn causes(value: Value, old: Option<Value>) -> Vec<(String, String)> {
        let parse = |v: Value| {
            let mut object = Object::from_json(Kind::EndpointSlice, v).unwrap();
            crate::defaults::apply(&mut object);
            object
        };
        let old = old.map(parse);
        super::super::validate(&parse(value), old.as_ref())
    }

    /// A case: its name, the fields changed on a valid slice, the causes expected.
    type Case = (&'static str, Value, &'static [(&'static str, &'static str)]);

    #[test]
    fn endpoint_slice_rules() {
        let cases: Vec<Case> = vec![
            ("valid", json!({}), &[]),
            (
                "no address type",
                json!({"addressType": ""}),
                &[("addressType", "Required value")],
            ),
            (
                "unknown address type",
                json!({"addressType": "IP"}),
                &[(
                    "addressType",
                    "Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
                )],
            ),
            (
                "an endpoint without addresses",
                json!({"endpoints": [{"addresses": []}]}),
                &[(
                    "endpoints[0].addresses",
                    "Required value: must contain at least 1 address",
                )],
            ),
            (
                "an IPv6 address in an IPv4 slice",
                json!({"endpoints": [{"addresses": ["fd00::1"]}]}),
                &[(
                    "endpoints[0].addresses[0]",
                    "Invalid value: \"fd00::1\": must be a valid IPv4 address",
                )],
            ),
            (
                "duplicate port names",
                json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}),
                &[("ports[1].name", "Duplicate value: \"http\"")],
            ),
            (
                "unnamed ports default to the same empty name",
                json!({"ports": [{"port": 80}, {"port": 81}]}),
                &[("ports[1].name", "Duplicate value: \"\"")],
            ),
            (
                "a bad protocol",
                json!({"ports": [{"name": "http", "port": 80, "protocol": "HTTP"}]}),
                &[(
                    "ports[0].protocol",
                    "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                )],
            ),
        ];
        for (name, changes, want) in cases {
            let got = causes(slice(changes), None);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(f, m)| ((*f).to_owned(), (*m).to_owned()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let moved = causes(
            slice(json!({"addressType": "IPv6", "endpoints": []})),
            Some(slice(json!({}))),
        );
        assert_eq!(
            moved,
            [(
                "addressType".to_owned(),
                "Invalid value: \"IPv6\": field is immutable".to_owned()
            )]
        );
    }
}
