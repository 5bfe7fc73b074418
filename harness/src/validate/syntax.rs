//! The syntax checks of `k8s.io/apimachinery/pkg/util/validation`: DNS names, qualified names,
//! label values, port names and numbers, config keys, percentages, IPs and quantities. Each
//! returns upstream's messages (empty when the value is fine), word for word, because users
//! search for them.

use std::net::IpAddr;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const PERCENT_MSG: &str =
    "a valid percent string must be a numeric string followed by an ending '%'";
const PERCENT_FMT: &str = "[0-9]+%";
const RELAXED_ENV_MSG: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";
const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Upstream's `RegexError`: the message, examples and the regular expression.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{example}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && alnum_lower(b[0])
        && alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| alnum_lower(c) || c == b'-')
}

/// A DNS-1123 label: namespaces, container, volume and port names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !is_label_shape(s) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// A DNS-1123 subdomain: the names of most objects.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if !s.split('.').all(is_label_shape) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// A DNS-1035 label: Service names (they become DNS names and environment variables, so they
/// must start with a letter).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !(is_label_shape(s) && s.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name (`[prefix/]name`): label and annotation keys.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len(63)));
    }
    if !is_qualified_shape(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// A label value: empty, or up to 63 characters of the qualified-name shape.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !s.is_empty() && !is_qualified_shape(s) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// A port number, 1-65535.
pub fn port_number(n: i64) -> Vec<String> {
    if (1..=65535).contains(&n) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_owned()]
    }
}

/// A port name (IANA_SVC_NAME): at most 15 lowercase alphanumerics and hyphens, one letter.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len(15));
    }
    if s.is_empty() || !s.bytes().all(|c| alnum_lower(c) || c == b'-') {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned(),
        );
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_owned());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_owned());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_owned());
    }
    errs
}

/// An environment variable name, with the relaxed rule that is on by default since 1.32:
/// printable ASCII other than `=`.
pub fn env_var_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() {
        errs.push("environment variable name must be non-empty".to_owned());
    }
    if s.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(RELAXED_ENV_MSG.to_owned());
    }
    errs
}

/// A ConfigMap or Secret key (also a file name in a volume).
pub fn config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(regex_error(
            CONFIG_KEY_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if s == "." {
        errs.push("must not be '.'".to_owned());
    } else if s == ".." {
        errs.push("must not be '..'".to_owned());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_owned());
    }
    errs
}

/// A percentage such as `25%`.
pub fn percent(s: &str) -> Vec<String> {
    match s.strip_suffix('%') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) => {
            Vec::new()
        }
        _ => vec![regex_error(PERCENT_MSG, PERCENT_FMT, &["1%", "93%"])],
    }
}

/// An IPv4 or IPv6 address.
pub fn ip(s: &str) -> Vec<String> {
    if s.parse::<IpAddr>().is_ok() {
        Vec::new()
    } else {
        vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_owned()]
    }
}

/// The syntax of a resource quantity (`100m`, `1.5Gi`, `2e3`), as its parser reports it.
pub fn quantity(s: &str) -> Vec<String> {
    if parse_quantity(s).is_some() {
        Vec::new()
    } else {
        vec![QUANTITY_MSG.to_owned()]
    }
}

/// A quantity's value, approximately (enough to compare requests with limits).
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let unsigned = number.strip_prefix(['+', '-']).unwrap_or(number);
    if unsigned.is_empty()
        || unsigned == "."
        || unsigned.matches('.').count() > 1
        || !unsigned.bytes().all(|c| c.is_ascii_digit() || c == b'.')
    {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let digits = &exp[1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(dns1123_label("web-1").is_empty());
        assert!(dns1123_label("1web").is_empty());
        assert_eq!(
            dns1123_label("Web"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(dns1123_label("a-").len() == 1 && dns1123_label("").len() == 1);
        assert!(dns1123_subdomain("hostbot-775855699b-x2x4z").is_empty());
        assert!(dns1123_subdomain("a.b.c").is_empty());
        assert_eq!(dns1123_subdomain("a..b").len(), 1);
        assert_eq!(dns1123_subdomain("my_app").len(), 1);
        assert!(dns1035_label("web").is_empty());
        assert!(dns1035_label("1web")[0].starts_with("a DNS-1035 label"));
    }

    #[test]
    fn qualified_names_and_label_values() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "A_b.c-9",
            "example.com/MyName",
        ] {
            assert!(qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert!(qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(qualified_name("-app")[0].starts_with("name part must consist"));
        assert_eq!(
            qualified_name(&"k".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert!(
            qualified_name("Bad_Prefix/x")[0]
                .starts_with("prefix part a lowercase RFC 1123 subdomain")
        );
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_3").is_empty());
        assert!(label_value("hello world")[0].starts_with("a valid label must be an empty string"));
        assert_eq!(
            label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn ports() {
        assert!(port_number(80).is_empty() && port_number(65535).is_empty());
        assert_eq!(
            port_number(0),
            vec!["must be between 1 and 65535, inclusive"]
        );
        assert_eq!(port_number(70000).len(), 1);
        assert!(port_name("http").is_empty() && port_name("http-alt2").is_empty());
        assert_eq!(
            port_name("8080"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name("a--b"),
            vec!["must not contain consecutive hyphens"]
        );
        assert_eq!(
            port_name("-ab"),
            vec!["must not begin or end with a hyphen"]
        );
        assert_eq!(
            port_name("this-is-too-long-1"),
            vec!["must be no more than 15 characters"]
        );
        assert_eq!(
            port_name("HTTP"),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)"
            ]
        );
    }

    #[test]
    fn env_keys_percent_ip() {
        assert!(env_var_name("PORT").is_empty() && env_var_name("1.weird-name").is_empty());
        assert_eq!(env_var_name("A=B").len(), 1);
        assert_eq!(env_var_name("TAB\t").len(), 1);
        assert!(config_map_key("myconfig.txt").is_empty());
        assert_eq!(config_map_key("..data"), vec!["must not start with '..'"]);
        assert_eq!(config_map_key("a/b").len(), 1);
        assert!(percent("25%").is_empty() && percent("100%").is_empty());
        assert_eq!(percent("25").len(), 1);
        assert_eq!(percent("%").len(), 1);
        assert!(ip("10.96.0.1").is_empty() && ip("fd00::1").is_empty());
        assert_eq!(ip("10.96.0").len(), 1);
    }

    #[test]
    fn quantities() {
        let cases = [
            ("100m", Some(0.1)),
            ("1", Some(1.0)),
            ("1.5Gi", Some(1.5 * 1024.0 * 1024.0 * 1024.0)),
            ("128Mi", Some(128.0 * 1024.0 * 1024.0)),
            ("2e3", Some(2000.0)),
            ("-1", Some(-1.0)),
            ("1x", None),
            ("", None),
            ("Mi", None),
            ("1.2.3", None),
        ];
        for (text, want) in cases {
            let got = parse_quantity(text);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{text}: {g} != {w}"),
                (None, None) => {}
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
        assert!(quantity("1x")[0].starts_with("quantities must match"));
    }
}
