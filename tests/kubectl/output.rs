//! Reading what kubectl prints: tables by column ([`Table`]), upstream's name shapes, AGE,
//! `describe`'s events, and text checks that ignore column padding.

use std::collections::BTreeMap;

use crate::support::ALPHABET;

/// A table kubectl printed, read by the header's column positions (cells may hold single
/// spaces, as in `1 (5s ago)` or `NOMINATED NODE`).
#[derive(Debug, Clone)]
pub struct Table {
    pub text: String,
    pub headers: Vec<String>,
    pub rows: Vec<BTreeMap<String, String>>,
}

impl Table {
    /// Parses the first table in `text` (up to a blank line).
    pub fn parse(text: &str) -> Table {
        let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
        let Some(header) = lines.next() else {
            return Table {
                text: text.to_owned(),
                headers: Vec::new(),
                rows: Vec::new(),
            };
        };
        let starts = column_starts(header);
        let cut = |line: &str| -> Vec<String> {
            starts
                .iter()
                .enumerate()
                .map(|(i, &start)| {
                    let end = starts.get(i + 1).copied().unwrap_or(usize::MAX);
                    let chars: String = line
                        .chars()
                        .skip(start)
                        .take(end.saturating_sub(start))
                        .collect();
                    chars.trim().to_owned()
                })
                .collect()
        };
        let headers = cut(header);
        let rows = lines
            .take_while(|l| !l.trim().is_empty())
            .map(|line| headers.iter().cloned().zip(cut(line)).collect())
            .collect();
        Table {
            text: text.to_owned(),
            headers,
            rows,
        }
    }

    /// Every table in `text` (kubectl separates the kinds of `get a,b` and `get all` with blank
    /// lines).
    pub fn parse_all(text: &str) -> Vec<Table> {
        text.split("\n\n")
            .filter(|chunk| !chunk.trim().is_empty())
            .map(Table::parse)
            .collect()
    }

    /// The row whose NAME is `name`.
    pub fn row(&self, name: &str) -> &BTreeMap<String, String> {
        self.rows
            .iter()
            .find(|r| r.get("NAME").map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in:\n{}", self.text))
    }

    /// The cell of row `name` in column `column`.
    pub fn cell(&self, name: &str, column: &str) -> &str {
        self.row(name)
            .get(column)
            .unwrap_or_else(|| panic!("no column {column} in:\n{}", self.text))
    }

    /// Every NAME.
    pub fn names(&self) -> Vec<String> {
        self.rows.iter().map(|r| r["NAME"].clone()).collect()
    }
}

/// Where each header label starts: labels are separated by two or more spaces (kubectl pads
/// columns with three), a single space stays inside a label.
fn column_starts(header: &str) -> Vec<usize> {
    let chars: Vec<char> = header.chars().collect();
    let mut starts = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != ' ' && (i == 0 || (i >= 2 && chars[i - 1] == ' ' && chars[i - 2] == ' ')) {
            starts.push(i);
        }
        i += 1;
    }
    starts
}

/// Whether `hash` looks like a pod-template hash (1-10 characters of [`ALPHABET`]).
pub fn is_template_hash(hash: &str) -> bool {
    (1..=10).contains(&hash.len()) && hash.chars().all(|c| ALPHABET.contains(c))
}

/// Whether `name` is `<prefix>-<5 characters of ALPHABET>`.
pub fn is_suffixed(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| suffix.len() == 5 && suffix.chars().all(|c| ALPHABET.contains(c)))
}

/// Whether `name` is a pod of Deployment `deployment`: `<deployment>-<hash>-<5>`.
pub fn is_deployment_pod(name: &str, deployment: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(deployment)
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    let Some((hash, suffix)) = rest.rsplit_once('-') else {
        return false;
    };
    is_template_hash(hash) && suffix.len() == 5 && suffix.chars().all(|c| ALPHABET.contains(c))
}

/// The ReplicaSet part (`<deployment>-<hash>`) of a Deployment's pod name.
pub fn replicaset_of(pod: &str) -> &str {
    pod.rsplit_once('-').map_or(pod, |(rs, _)| rs)
}

/// kubectl's AGE (`0s`, `45s`, `2m3s`, `3d23h`) in seconds.
pub fn age_seconds(age: &str) -> u64 {
    let mut total = 0;
    let mut number = 0;
    for c in age.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = number * 10 + u64::from(digit);
        } else {
            total += number
                * match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86400,
                    'y' => 365 * 86400,
                    _ => panic!("not an AGE: {age}"),
                };
            number = 0;
        }
    }
    total
}

/// The lines of `describe` output under `Events:`.
pub fn events_section(describe: &str) -> Vec<String> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .skip(3)
        .map(str::to_owned)
        .collect()
}

/// Asserts that `text` contains each of `needles`, ignoring how many spaces pad a column
/// (kubectl aligns `describe` to its longest label, which differs with the object).
#[track_caller]
pub fn assert_contains(text: &str, needles: &[&str]) {
    let squeezed = squeeze(text);
    for needle in needles {
        assert!(
            text.contains(needle) || squeezed.contains(&squeeze(needle)),
            "expected {needle:?} in:\n{text}"
        );
    }
}

/// `text` with each run of spaces and tabs inside a line made one space (indentation kept).
fn squeeze(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let body = line.trim_start_matches([' ', '\t']);
            let indent = &line[..line.len() - body.len()];
            let words: Vec<&str> = body.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let trailing = if body.ends_with(' ') && !words.is_empty() {
                " "
            } else {
                ""
            };
            format!("{indent}{}{trailing}", words.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_by_column() {
        let table = Table::parse(
            "NAME      READY   STATUS    RESTARTS     AGE   IP          NOMINATED NODE\n\
             a-1       1/1     Running   1 (3s ago)   5s    127.0.0.2   <none>\n\
             b         0/1               0            0s    <none>      <none>\n",
        );
        assert_eq!(table.cell("a-1", "RESTARTS"), "1 (3s ago)");
        assert_eq!(table.cell("a-1", "NOMINATED NODE"), "<none>");
        assert_eq!(table.cell("b", "STATUS"), "");
        assert_eq!(table.names(), ["a-1", "b"]);
    }

    #[test]
    fn names_have_upstream_shapes() {
        assert!(is_deployment_pod("hostbot-65f447d896-8m5ww", "hostbot"));
        assert!(!is_deployment_pod("hostbot-65f447d896-8m5wwx", "hostbot"));
        assert!(!is_deployment_pod("hostbot-65f447d89a-8m5ww", "hostbot"));
        assert!(is_suffixed("httpserver-9qscc", "httpserver"));
        assert_eq!(
            replicaset_of("hostbot-65f447d896-8m5ww"),
            "hostbot-65f447d896"
        );
        assert_eq!(age_seconds("2m3s"), 123);
        assert_eq!(age_seconds("0s"), 0);
        assert_contains(
            "Selector:          app=x\nType:  ClusterIP\n",
            &["Selector:   app=x\nType: ClusterIP"],
        );
    }
}
