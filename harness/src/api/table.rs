//! Server-side printing: the `meta.k8s.io/v1` `Table` that kubectl asks for (`Accept:
//! ...;as=Table;...`) when it prints `get` output, with upstream's columns per kind (cells
//! come from `pod` and `printer`). Columns with `priority: 1` only show with `-o wide`; the
//! server always fills every cell, as upstream does. AGE is computed here as upstream's
//! `HumanDuration`.

mod pod;
mod printer;

pub use printer::format_selector;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use crate::object::{Kind, Object};

/// What `rows[].object` carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A column: name, type, and whether only `-o wide` shows it.
struct Column {
    name: &'static str,
    kind: &'static str,
    wide: bool,
}

const fn col(name: &'static str, kind: &'static str) -> Column {
    Column {
        name,
        kind,
        wide: false,
    }
}

const fn wide(name: &'static str, kind: &'static str) -> Column {
    Column {
        name,
        kind,
        wide: true,
    }
}

fn columns(kind: Kind) -> Vec<Column> {
    let template = [
        wide("Containers", "string"),
        wide("Images", "string"),
        wide("Selector", "string"),
    ];
    let mut columns = match kind {
        Kind::Pod => vec![
            col("Name", "string"),
            col("Ready", "string"),
            col("Status", "string"),
            col("Restarts", "string"),
            col("Age", "string"),
            wide("IP", "string"),
            wide("Node", "string"),
            wide("Nominated Node", "string"),
            wide("Readiness Gates", "string"),
        ],
        Kind::Deployment => {
            let mut c = vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Up-to-date", "integer"),
                col("Available", "integer"),
                col("Age", "string"),
            ];
            c.extend(template);
            c
        }
        Kind::ReplicaSet => {
            let mut c = vec![
                col("Name", "string"),
                col("Desired", "integer"),
                col("Current", "integer"),
                col("Ready", "integer"),
                col("Age", "string"),
            ];
            c.extend(template);
            c
        }
        Kind::Service => vec![
            col("Name", "string"),
            col("Type", "string"),
            col("Cluster-IP", "string"),
            col("External-IP", "string"),
            col("Port(s)", "string"),
            col("Age", "string"),
            wide("Selector", "string"),
        ],
        Kind::Endpoints => vec![
            col("Name", "string"),
            col("Endpoints", "string"),
            col("Age", "string"),
        ],
        Kind::EndpointSlice => vec![
            col("Name", "string"),
            col("AddressType", "string"),
            col("Ports", "string"),
            col("Endpoints", "string"),
            col("Age", "string"),
        ],
        Kind::ConfigMap => vec![
            col("Name", "string"),
            col("Data", "integer"),
            col("Age", "string"),
        ],
        Kind::Secret => vec![
            col("Name", "string"),
            col("Type", "string"),
            col("Data", "integer"),
            col("Age", "string"),
        ],
        Kind::Namespace => vec![
            col("Name", "string"),
            col("Status", "string"),
            col("Age", "string"),
        ],
        Kind::Event => vec![
            col("Last Seen", "string"),
            col("Type", "string"),
            col("Reason", "string"),
            col("Object", "string"),
            wide("Subobject", "string"),
            wide("Source", "string"),
            col("Message", "string"),
            wide("First Seen", "string"),
            wide("Count", "integer"),
            wide("Name", "string"),
        ],
    };
    columns.shrink_to_fit();
    columns
}

fn column_definitions(kind: Kind) -> Value {
    columns(kind)
        .iter()
        .map(|c| {
            let mut def = json!({
                "name": c.name,
                "type": c.kind,
                "format": if c.name == "Name" { "name" } else { "" },
                "description": "",
                "priority": if c.wide { 1 } else { 0 },
            });
            if c.name != "Name" {
                def.as_object_mut().expect("object").remove("format");
            }
            def
        })
        .collect()
}

/// `PartialObjectMetadata` of an object: what kubectl reads for `-A`, `--show-labels`, `-L`.
pub fn partial_metadata(object: &Object) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": serde_json::to_value(object.meta()).expect("metadata serializes"),
    })
}

fn row(object: &Object, include: IncludeObject, now: Timestamp) -> Value {
    let mut row = json!({"cells": printer::cells(object, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(object),
        IncludeObject::Object => row["object"] = object.to_json(),
    }
    if let Some(conditions) = printer::row_conditions(object) {
        row["conditions"] = conditions;
    }
    row
}

/// A `Table` of objects of one kind, at list resourceVersion `resource_version`.
pub fn table(
    kind: Kind,
    objects: &[Object],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    let now = Timestamp::now();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(kind),
        "rows": objects.iter().map(|o| row(o, include, now)).collect::<Vec<_>>(),
    })
}

/// Upstream's `duration.HumanDuration`: `45s`, `2m10s`, `15m`, `3h20m`, `26h`, `3d4h`, `45d`,
/// `2y10d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of a timestamp as kubectl shows it; `<unknown>` when unset.
pub fn since(time: Option<&Time>, now: Timestamp) -> String {
    match time {
        Some(Time(t)) => human_duration(now.duration_since(*t).as_secs()),
        None => "<unknown>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_upstream() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (130, "2m10s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (26 * 3600, "26h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        for kind in Kind::ALL {
            let object = Object::from_json(*kind, json!({"metadata": {"name": "x"}})).unwrap();
            let cells = printer::cells(&object, Timestamp::now());
            assert_eq!(cells.len(), columns(*kind).len(), "{kind}");
        }
    }

    #[test]
    fn tables_carry_metadata_and_wide_columns() {
        let object = Object::from_json(
            Kind::Pod,
            json!({"metadata": {"name": "web", "namespace": "default"}}),
        )
        .unwrap();
        let t = table(Kind::Pod, &[object], "7", None, IncludeObject::Metadata);
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
    }
}
