//! Manifests, as `kubectl apply -f` and `kubectl delete -f` take them.
//!
//! [`load_path`] reads a file or a directory (its `.yaml`, `.yml` and `.json` files in name
//! order; [`load_path_recursive`] descends), [`parse_str`] one file's text: multi-document
//! YAML (YAML 1.1 numbers, so `defaultMode: 0644` is 420 as kubectl reads it), JSON objects
//! and `List`s. Each object is decoded strictly, like `--validate=strict`: an unknown field
//! or a value of the wrong type is an error naming the file, the document, the object and the
//! field, with a hint. Objects are then validated as the API server would on create.
//!
//! [`apply`] checks every manifest against the store before writing any (a bad file writes
//! nothing), then creates, configures or leaves each object as kubectl would, see the
//! `applier` module for the merge. [`delete`] removes what the manifests name. [`strict`] is
//! the decoder behind the field checks, usable for any JSON body.

mod applier;
mod parse;
pub mod strict;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::object::{Object, ObjectKey};
use crate::store::Store;

pub use applier::LAST_APPLIED;

/// One object read from a manifest file.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The file it came from, as given (joined with the directory when one was given).
    pub file: PathBuf,
    /// Its document in that file, counting from 1 and skipping empty documents.
    pub document: usize,
    /// The object as written (no defaults; namespace unset when the manifest has none).
    pub object: Object,
}

impl Manifest {
    /// Where the object goes: its namespace, or `default` when the manifest names none.
    pub fn key(&self) -> ObjectKey {
        let namespace = match self.object.namespace() {
            "" => "default",
            ns => ns,
        };
        ObjectKey::new(self.object.kind(), namespace, self.object.name())
    }
}

/// What [`apply`] did to one object, in kubectl's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// kubectl's line for an applied object: `deployment.apps/hostbot created`.
pub fn kubectl_line(key: &ObjectKey, outcome: Outcome) -> String {
    let kind = key.kind;
    let group = if kind.group().is_empty() {
        String::new()
    } else {
        format!(".{}", kind.group())
    };
    format!("{}{group}/{} {outcome}", kind.singular(), key.name)
}

/// Loads a manifest file, or every `.yaml`, `.yml` and `.json` file of a directory (not its
/// subdirectories), in name order.
pub fn load_path(path: &Path) -> Result<Vec<Manifest>> {
    load(path, false)
}

/// Like [`load_path`], descending into subdirectories (`kubectl apply -R`).
pub fn load_path_recursive(path: &Path) -> Result<Vec<Manifest>> {
    load(path, true)
}

/// Parses the text of one manifest file; `file` names it in messages and decides the format
/// (`.json` is read as JSON, anything else as YAML).
pub fn parse_str(text: &str, file: &Path) -> Result<Vec<Manifest>> {
    parse::parse(text, file).map_err(|problems| Error::Manifest(problems.join("\n")))
}

/// Applies manifests in order, after checking them all: each object is created if absent,
/// otherwise merged into the stored one and written only if that changes it.
pub fn apply(store: &Store, manifests: Vec<Manifest>) -> Result<Vec<(ObjectKey, Outcome)>> {
    applier::apply(store, manifests)
}

/// Deletes the objects the manifests name, in order, as `kubectl delete -f` does (background
/// cascade, default grace period). Objects already gone are skipped; the deleted are returned.
pub fn delete(store: &Store, manifests: Vec<Manifest>) -> Result<Vec<ObjectKey>> {
    applier::delete(store, manifests)
}

fn load(path: &Path, recursive: bool) -> Result<Vec<Manifest>> {
    let metadata = std::fs::metadata(path)
        .map_err(|err| Error::Manifest(format!("{}: cannot read: {err}", path.display())))?;
    let files = if metadata.is_dir() {
        let mut files = Vec::new();
        collect_files(path, recursive, &mut files)?;
        if files.is_empty() {
            return Err(Error::Manifest(format!(
                "{}: no manifests found (looked for *.yaml, *.yml and *.json{})",
                path.display(),
                if recursive {
                    " in every subdirectory"
                } else {
                    "; pass recursive to look in subdirectories"
                }
            )));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) => {
                problems.push(format!("{}: cannot read: {err}", file.display()));
                continue;
            }
        };
        match parse::parse(&text, &file) {
            Ok(found) => manifests.extend(found),
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(manifests)
    } else {
        Err(Error::Manifest(problems.join("\n")))
    }
}

fn collect_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let read =
        |err: std::io::Error| Error::Manifest(format!("{}: cannot read: {err}", dir.display()));
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(read)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect_files(&entry, true, out)?;
            }
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(entry);
        }
    }
    Ok(())
}

/// One line per validation cause, `context: field: message`, with a hint for the classic
/// mistakes.
fn describe_causes(context: &str, causes: &[(String, String)]) -> String {
    let lines: Vec<String> = causes
        .iter()
        .map(|(field, message)| {
            let hint = if message.ends_with("`selector` does not match template `labels`") {
                ": make spec.selector.matchLabels a subset of spec.template.metadata.labels"
            } else if message.contains("may not be 0 when `maxSurge` is 0") {
                ": let maxSurge or maxUnavailable be above 0, or the rollout could never progress"
            } else if message.contains("field is immutable")
                || message.contains("may not change once set")
            {
                ": delete the object and apply again to change it"
            } else {
                ""
            };
            format!("{context}: {field}: {message}{hint}")
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests;
