//! Image references as the Docker engine reads them: `name[:tag][@digest]`, where the name may
//! start with a registry (`127.0.0.1:5000/hostbot:v1`, `localhost:5000/team/app`).
//!
//! The docker runtime needs three answers from a reference: the `name` and `tag` testcontainers
//! creates the container from, whether a missing image may be pulled (only from a registry on
//! this machine: the harness never reaches out to the internet), and how to show it.

use std::net::IpAddr;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The repository as written, registry included (`127.0.0.1:5000/hostbot`).
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:...` for `name@sha256:...`.
    pub digest: Option<String>,
    /// The registry host (and port) when the name starts with one.
    pub registry: Option<String>,
}

impl Reference {
    pub fn parse(image: &str) -> Reference {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (image, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        let registry = name.split_once('/').and_then(|(first, _)| {
            (first.contains('.') || first.contains(':') || first == "localhost")
                .then(|| first.to_owned())
        });
        Reference {
            name: name.to_owned(),
            tag,
            digest,
            registry,
        }
    }

    /// The name and tag to create a container from; `None` for a digest reference, which is
    /// created from the image id instead (testcontainers only knows `name:tag`).
    pub fn name_and_tag(&self) -> Option<(String, String)> {
        if self.digest.is_some() {
            return None;
        }
        let tag = self.tag.clone().unwrap_or_else(|| "latest".to_owned());
        Some((self.name.clone(), tag))
    }

    /// The tag for `status.containerStatuses[].image` bookkeeping: the tag, the digest, or
    /// `latest`.
    pub fn tag_or_latest(&self) -> String {
        self.tag
            .clone()
            .or_else(|| self.digest.clone())
            .unwrap_or_else(|| "latest".to_owned())
    }

    /// Whether the registry is on this machine (`127.0.0.1:5000`, `localhost:5000`,
    /// `[::1]:5000`): the only registries the docker runtime pulls from.
    pub fn is_local_registry(&self) -> bool {
        let Some(registry) = &self.registry else {
            return false;
        };
        let host = if let Some(bracketed) = registry.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or_default()
        } else {
            registry.split(':').next().unwrap_or_default()
        };
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_the_engine() {
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, bool);
        let cases: [Case; 7] = [
            (
                "yourname/hostbot:v1",
                "yourname/hostbot",
                Some("v1"),
                None,
                false,
            ),
            ("hostbot", "hostbot", None, None, false),
            (
                "127.0.0.1:5000/hostbot:v1",
                "127.0.0.1:5000/hostbot",
                Some("v1"),
                None,
                true,
            ),
            (
                "localhost:5000/team/app",
                "localhost:5000/team/app",
                None,
                None,
                true,
            ),
            ("[::1]:5000/app:2", "[::1]:5000/app", Some("2"), None, true),
            (
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx",
                Some("1.25"),
                None,
                false,
            ),
            ("app@sha256:abc", "app", None, Some("sha256:abc"), false),
        ];
        for (image, name, tag, digest, local) in cases {
            let r = Reference::parse(image);
            assert_eq!(r.name, name, "{image}");
            assert_eq!(r.tag.as_deref(), tag, "{image}");
            assert_eq!(r.digest.as_deref(), digest, "{image}");
            assert_eq!(r.is_local_registry(), local, "{image}");
        }
    }

    #[test]
    fn containers_are_created_from_name_and_tag() {
        let r = Reference::parse("hostbot");
        assert_eq!(r.name_and_tag(), Some(("hostbot".into(), "latest".into())));
        assert_eq!(r.tag_or_latest(), "latest");
        let r = Reference::parse("127.0.0.1:5000/hostbot:v2");
        assert_eq!(
            r.name_and_tag(),
            Some(("127.0.0.1:5000/hostbot".into(), "v2".into()))
        );
        let r = Reference::parse("app:1@sha256:abc");
        assert_eq!(r.name_and_tag(), None);
        assert_eq!(r.tag_or_latest(), "1");
        assert!(!Reference::parse("registry.example.com:5000/app").is_local_registry());
    }
}
