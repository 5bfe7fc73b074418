//! The arguments of `port-forward`: [`Target`] (`pod/x`, `deploy/x`, `rs/x`, `svc/x`, `x`) and
//! [`PortPair`] (`8080:80`, `80`, `:80`), parsed with kubectl's rules and messages.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::object::Kind;

/// What to forward to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `pod/NAME` or a bare `NAME`: that pod.
    Pod(String),
    /// `deploy/NAME`: one running pod of the Deployment, pinned.
    Deployment(String),
    /// `rs/NAME`: one running pod of the ReplicaSet, pinned.
    ReplicaSet(String),
    /// `svc/NAME`: the Service, each connection balanced (or one pod, pinned, as kubectl does).
    Service(String),
}

impl Target {
    /// Parses `TYPE/NAME` (any of kubectl's names for the type, optionally with its group, such
    /// as `deployments.apps/x`) or a bare pod name.
    pub fn parse(text: &str) -> Result<Target> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => (kind, name),
            None => ("pod", text),
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::BadRequest(format!(
                "arguments in resource/name form must have a single resource and name, got {text:?}"
            )));
        }
        let kind_name = kind.split_once('.').map_or(kind, |(k, _)| k);
        let name = name.to_owned();
        match Kind::parse(kind_name) {
            Some(Kind::Pod) => Ok(Target::Pod(name)),
            Some(Kind::Deployment) => Ok(Target::Deployment(name)),
            Some(Kind::ReplicaSet) => Ok(Target::ReplicaSet(name)),
            Some(Kind::Service) => Ok(Target::Service(name)),
            Some(other) => Err(Error::BadRequest(format!(
                "cannot port-forward to a {}: only pods, deployments, replicasets and services can be forwarded",
                other.singular()
            ))),
            None => Err(Error::BadRequest(format!(
                "the server doesn't have a resource type \"{kind}\""
            ))),
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Pod(n) | Target::Deployment(n) | Target::ReplicaSet(n) | Target::Service(n) => {
                n
            }
        }
    }

    /// The kind of object named.
    pub fn kind(&self) -> Kind {
        match self {
            Target::Pod(_) => Kind::Pod,
            Target::Deployment(_) => Kind::Deployment,
            Target::ReplicaSet(_) => Kind::ReplicaSet,
            Target::Service(_) => Kind::Service,
        }
    }
}

impl fmt::Display for Target {
    /// `pod/x`, `deployment/x`, `replicaset/x`, `service/x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind().singular(), self.name())
    }
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Target> {
        Target::parse(s)
    }
}

/// One `LOCAL:REMOTE` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPair {
    /// The local port; 0 picks a free one.
    pub local: u16,
    /// The port on the pod, or the service port for `svc/`.
    pub remote: u16,
}

impl PortPair {
    /// Parses `8080:80`, `80` (the same port locally) or `:80` (a random local port).
    pub fn parse(text: &str) -> Result<PortPair> {
        let parts: Vec<&str> = text.split(':').collect();
        let (local, remote) = match parts.as_slice() {
            [both] => (*both, *both),
            ["", remote] => ("0", *remote),
            [local, remote] => (*local, *remote),
            _ => {
                return Err(Error::BadRequest(format!("invalid port format '{text}'")));
            }
        };
        let number = |which: &str, s: &str| {
            s.parse::<u16>().map_err(|err| {
                Error::BadRequest(format!("error parsing {which} port '{s}': {err}"))
            })
        };
        let local = number("local", local)?;
        let remote = number("remote", remote)?;
        if remote == 0 {
            return Err(Error::BadRequest("remote port must be > 0".into()));
        }
        Ok(PortPair { local, remote })
    }
}

impl FromStr for PortPair {
    type Err = Error;
    fn from_str(s: &str) -> Result<PortPair> {
        PortPair::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_like_kubectl() {
        let cases = [
            ("hostbot", Target::Pod("hostbot".into())),
            ("pod/hostbot", Target::Pod("hostbot".into())),
            ("pods/hostbot", Target::Pod("hostbot".into())),
            ("deploy/web", Target::Deployment("web".into())),
            ("deployment/web", Target::Deployment("web".into())),
            ("deployments.apps/web", Target::Deployment("web".into())),
            ("rs/web-abc", Target::ReplicaSet("web-abc".into())),
            ("replicaset/web-abc", Target::ReplicaSet("web-abc".into())),
            ("svc/web", Target::Service("web".into())),
            ("service/web", Target::Service("web".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).unwrap(), want, "{text}");
        }
        assert_eq!(
            Target::parse("deploy/web").unwrap().to_string(),
            "deployment/web"
        );
    }

    #[test]
    fn bad_targets_say_why() {
        let cases = [
            ("foo/x", "the server doesn't have a resource type \"foo\""),
            ("cm/x", "cannot port-forward to a configmap"),
            ("pod/", "must have a single resource and name"),
            ("a/b/c", "must have a single resource and name"),
        ];
        for (text, want) in cases {
            let err = Target::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn port_pairs_parse_like_kubectl() {
        let cases = [
            (
                "8080:80",
                PortPair {
                    local: 8080,
                    remote: 80,
                },
            ),
            (
                "80",
                PortPair {
                    local: 80,
                    remote: 80,
                },
            ),
            (
                ":80",
                PortPair {
                    local: 0,
                    remote: 80,
                },
            ),
            (
                "0:80",
                PortPair {
                    local: 0,
                    remote: 80,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(PortPair::parse(text).unwrap(), want, "{text}");
        }
        let bad = [
            ("1:2:3", "invalid port format '1:2:3'"),
            ("x:80", "error parsing local port 'x'"),
            ("80:y", "error parsing remote port 'y'"),
            ("70000:80", "error parsing local port '70000'"),
            ("80:0", "remote port must be > 0"),
            (":", "error parsing remote port ''"),
        ];
        for (text, want) in bad {
            let err = PortPair::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
