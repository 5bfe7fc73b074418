//! [`Catalog`]: which images "exist" on this node, and what running each one means.
//!
//! There is no registry and no image store: an image reference is matched against the catalog's
//! patterns, and a match says which program plays the image (normally hostbot, with an image
//! environment such as `VERSION=<tag>` or `PORT=80`). A reference that matches nothing cannot be
//! pulled, which is how a rollout to a tag that does not exist (`blux2/hello-server:1.3`) gets
//! `ErrImagePull` exactly as on a real cluster.
//!
//! A pattern is a glob where `*` matches any run of characters. It is tried against the
//! reference as written (`nginx:1.25.3`), with `:latest` added when it has no tag, and fully
//! qualified (`docker.io/library/nginx:1.25.3`), so `nginx:*` and `docker.io/library/nginx:*`
//! both work. Entries from a catalog file come before the built-in ones and win.
//!
//! The catalog file is YAML:
//!
//! ```yaml
//! images:
//!   - image: "example.com/shop/*:*"   # any tag
//!     command: ["hostbot"]            # the image's entrypoint; "hostbot" means the hostbot program
//!     env: {PORT: "8080"}             # the image's environment (the pod's env overrides it)
//!   - image: "busybox:*"
//!     command: []                     # no entrypoint: the pod's own command runs on the host
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The name that stands for the hostbot program in an entrypoint.
pub const HOSTBOT: &str = "hostbot";

/// Image patterns and what each one runs.
#[derive(Clone, Debug)]
pub struct Catalog {
    entries: Vec<Entry>,
}

/// One image pattern.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Glob over image references; `*` matches anything.
    pub image: String,
    /// The image's entrypoint (ENTRYPOINT + CMD). Absent means `["hostbot"]`; empty means the
    /// image has none and the pod must give a `command`.
    #[serde(default = "hostbot_entrypoint")]
    pub command: Vec<String>,
    /// The image's environment (ENV), below the pod's own `env`. `$TAG` in a value is replaced
    /// by the reference's tag.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn hostbot_entrypoint() -> Vec<String> {
    vec![HOSTBOT.to_owned()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    images: Vec<Entry>,
}

/// What an image resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The entrypoint; may start with [`HOSTBOT`].
    pub entrypoint: Vec<String>,
    /// The image's environment, tag substituted.
    pub env: Vec<(String, String)>,
    /// The tag (`latest` when the reference has none; the digest for `name@sha256:...`).
    pub tag: String,
    /// A stable identifier for `status.containerStatuses[].imageID`.
    pub image_id: String,
}

/// An image that is not in the catalog, with upstream's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
)]
pub struct PullError {
    /// The fully qualified reference.
    pub full: String,
}

impl Default for Catalog {
    fn default() -> Catalog {
        Catalog::builtin()
    }
}

impl Catalog {
    /// The built-in entries: hostbot under any registry, and the seeds' images played by
    /// hostbot (nginx on port 80, blux2/hello-server 1.0-1.2, 1.4, 1.5 on 8080 and the kiamol
    /// hello on 80), plus a few tool images whose commands run on the host.
    pub fn builtin() -> Catalog {
        let hostbot = |image: &str, env: &[(&str, &str)]| Entry {
            image: image.to_owned(),
            command: hostbot_entrypoint(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let host = |image: &str| Entry {
            image: image.to_owned(),
            command: Vec::new(),
            env: BTreeMap::new(),
        };
        let version = ("VERSION", "$TAG");
        let mut entries = vec![
            hostbot("hostbot:*", &[version]),
            hostbot("*/hostbot:*", &[version]),
            hostbot("nginx:*", &[version, ("PORT", "80")]),
            hostbot("kiamol/ch02-hello-kiamol:*", &[version, ("PORT", "80")]),
        ];
        for tag in ["1.0", "1.1", "1.2", "1.4", "1.5"] {
            entries.push(hostbot(
                &format!("blux2/hello-server:{tag}"),
                &[version, ("PORT", "8080")],
            ));
        }
        entries.extend(["busybox:*", "alpine:*", "curlimages/curl:*"].map(host));
        Catalog { entries }
    }

    /// The built-in entries behind those of a catalog file.
    pub fn from_file(path: &Path) -> Result<Catalog> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read image catalog {}", path.display()), e))?;
        Catalog::from_yaml(&text)
            .map_err(|e| Error::Manifest(format!("image catalog {}: {e}", path.display())))
    }

    /// The built-in entries behind those of a catalog document.
    pub fn from_yaml(text: &str) -> std::result::Result<Catalog, String> {
        let file: CatalogFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for entry in &file.images {
            if entry.image.trim().is_empty() {
                return Err("an entry has an empty image pattern".to_owned());
            }
        }
        let mut catalog = Catalog {
            entries: file.images,
        };
        catalog.entries.extend(Catalog::builtin().entries);
        Ok(catalog)
    }

    /// Adds an entry in front of the others.
    pub fn prepend(&mut self, entry: Entry) {
        self.entries.insert(0, entry);
    }

    /// Resolves an image reference, as a pull would.
    pub fn resolve(&self, image: &str) -> std::result::Result<Image, PullError> {
        let reference = Reference::parse(image);
        let candidates = [
            image.to_owned(),
            reference.with_tag(image),
            reference.familiar(),
            reference.full(),
        ];
        let entry = self
            .entries
            .iter()
            .find(|e| candidates.iter().any(|c| glob(&e.image, c)))
            .ok_or_else(|| PullError {
                full: reference.full(),
            })?;
        let env = entry
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("$TAG", &reference.tag)))
            .collect();
        Ok(Image {
            entrypoint: entry.command.clone(),
            env,
            tag: reference.tag.clone(),
            image_id: format!("harness://{}", reference.full()),
        })
    }
}

/// An image reference split the way a container runtime reads it.
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`...
    registry: String,
    /// `library/nginx`, `blux2/hello-server`...
    repository: String,
    /// The tag, or the digest (with its `sha256:` prefix) for `@` references.
    tag: String,
    digest: bool,
}

impl Reference {
    fn parse(image: &str) -> Reference {
        let (name, tag, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, digest.to_owned(), true),
            None => {
                let slash = image.rfind('/').map_or(0, |i| i + 1);
                match image[slash..].rfind(':') {
                    Some(i) => (
                        &image[..slash + i],
                        image[slash + i + 1..].to_owned(),
                        false,
                    ),
                    None => (image, "latest".to_owned(), false),
                }
            }
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Reference {
            registry,
            repository,
            tag,
            digest,
        }
    }

    fn separator(&self) -> char {
        if self.digest { '@' } else { ':' }
    }

    /// `docker.io/library/nginx:1.25.3`.
    fn full(&self) -> String {
        format!(
            "{}/{}{}{}",
            self.registry,
            self.repository,
            self.separator(),
            self.tag
        )
    }

    /// Docker's short form: `nginx:1.25.3`, `blux2/hello-server:1.4`, `ghcr.io/a/b:1`.
    fn familiar(&self) -> String {
        let name = if self.registry == "docker.io" {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            format!("{}/{}", self.registry, self.repository)
        };
        format!("{name}{}{}", self.separator(), self.tag)
    }

    /// The reference as written, with `:latest` when it had no tag.
    fn with_tag(&self, image: &str) -> String {
        let slash = image.rfind('/').map_or(0, |i| i + 1);
        if image.contains('@') || image[slash..].contains(':') {
            image.to_owned()
        } else {
            format!("{image}:{}", self.tag)
        }
    }
}

/// Glob match where `*` matches any (possibly empty) run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(image: &Image) -> BTreeMap<&str, &str> {
        image
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn builtin_images_resolve_to_hostbot() {
        let catalog = Catalog::builtin();
        let cases = [
            ("yourname/hostbot:v1", "v1", None),
            ("hostbot:2", "2", None),
            ("ghcr.io/acme/hostbot:1.0", "1.0", None),
            ("nginx:1.25.3", "1.25.3", Some("80")),
            ("nginx", "latest", Some("80")),
            ("docker.io/library/nginx:1.24.0", "1.24.0", Some("80")),
            ("blux2/hello-server:1.4", "1.4", Some("8080")),
            ("docker.io/blux2/hello-server:1.5", "1.5", Some("8080")),
            ("kiamol/ch02-hello-kiamol", "latest", Some("80")),
        ];
        for (reference, tag, port) in cases {
            let image = catalog.resolve(reference).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(image.entrypoint, vec!["hostbot"], "{reference}");
            assert_eq!(image.tag, tag, "{reference}");
            assert_eq!(env(&image).get("VERSION"), Some(&tag), "{reference}");
            assert_eq!(env(&image).get("PORT").copied(), port, "{reference}");
        }
    }

    #[test]
    fn missing_tags_fail_like_containerd() {
        let catalog = Catalog::builtin();
        let err = catalog.resolve("blux2/hello-server:1.3").unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/blux2/hello-server:1.3\": failed to resolve reference \"docker.io/blux2/hello-server:1.3\": docker.io/blux2/hello-server:1.3: not found"
        );
        let err = catalog.resolve("x:1.3").unwrap_err();
        assert_eq!(err.full, "docker.io/library/x:1.3");
        assert!(catalog.resolve("redis").is_err());
    }

    #[test]
    fn references_parse_like_a_runtime() {
        let r = Reference::parse("localhost:5000/team/app:2");
        assert_eq!(r.full(), "localhost:5000/team/app:2");
        let r = Reference::parse("quay.io/app@sha256:abc");
        assert_eq!(
            (r.full().as_str(), r.tag.as_str()),
            ("quay.io/app@sha256:abc", "sha256:abc")
        );
        let r = Reference::parse("user/app");
        assert_eq!(r.full(), "docker.io/user/app:latest");
    }

    #[test]
    fn file_entries_win_over_builtin_ones() {
        let catalog = Catalog::from_yaml(
            "images:\n  - image: \"nginx:*\"\n    command: [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]\n  - image: \"example.com/*\"\n    env: {PORT: \"9000\", VERSION: \"v$TAG\"}\n",
        )
        .unwrap();
        let nginx = catalog.resolve("nginx:1.25").unwrap();
        assert_eq!(nginx.entrypoint[0], "/usr/sbin/nginx");
        let app = catalog.resolve("example.com/shop:3").unwrap();
        assert_eq!(app.entrypoint, vec!["hostbot"]);
        assert_eq!(env(&app).get("VERSION"), Some(&"v3"));
        assert!(catalog.resolve("hostbot:1").is_ok(), "built-ins are kept");
        let err = Catalog::from_yaml("images:\n  - image: x\n    cmd: []\n").unwrap_err();
        assert!(err.contains("cmd"), "{err}");
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abc"));
        assert!(glob("a*c", "ac"));
        assert!(!glob("a*c", "ab"));
        assert!(glob("*/hostbot:*", "me/hostbot:v1"));
        assert!(!glob("*/hostbot:*", "hostbot:v1"));
        assert!(glob("a*b*c", "aXbYbc"));
        assert!(!glob("ab*ba", "aba"));
    }
}
