//! The kubeconfig that points kubectl at the harness API: one cluster (the server URL and the
//! CA that signed its certificate), one user (the bearer token) and one context, current, with
//! namespace `default`. The file is written with mode 0600 since it holds the token.

use std::io::Write;
use std::path::Path;

use base64::Engine;

use crate::error::{Error, Result};

/// The kubeconfig text. Strings are written as JSON strings, which YAML reads verbatim.
pub fn render(server_url: &str, ca_pem: &str, token: &str, context: &str) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {name}\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         \x20   certificate-authority-data: {ca}\n\
         users:\n\
         - name: {name}\n\
         \x20 user:\n\
         \x20   token: {token}\n\
         contexts:\n\
         - name: {name}\n\
         \x20 context:\n\
         \x20   cluster: {name}\n\
         \x20   user: {name}\n\
         \x20   namespace: default\n\
         current-context: {name}\n\
         preferences: {{}}\n",
        name = quote(context),
        server = quote(server_url),
        ca = quote(&ca),
        token = quote(token),
    )
}

/// Writes the kubeconfig to `path` (mode 0600), creating its directory.
pub fn write(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    token: &str,
    context: &str,
) -> Result<()> {
    let fail = |err| {
        Error::io(
            format!("cannot write the kubeconfig {}", path.display()),
            err,
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(render(server_url, ca_pem, token, context).as_bytes())
        .map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_parseable_config() {
        let text = render(
            "https://127.0.0.1:6443",
            "-----BEGIN CERTIFICATE-----\n",
            "t0k\"en",
            "harness",
        );
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(value["current-context"], "harness");
        assert_eq!(value["users"][0]["user"]["token"], "t0k\"en");
        assert_eq!(
            value["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        let ca = value["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .unwrap();
        assert_eq!(decoded, b"-----BEGIN CERTIFICATE-----\n");
        assert_eq!(value["contexts"][0]["context"]["namespace"], "default");
    }

    #[test]
    fn writes_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kubeconfig");
        write(&path, "https://127.0.0.1:1", "ca", "token", "harness").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
