//! Watches (`?watch=true`): a chunked stream of newline-delimited
//! `{"type":"ADDED|MODIFIED|DELETED","object":...}` events, from the store's history after the
//! requested resourceVersion and then live, filtered by namespace and selectors. An object that
//! stops matching a selector is reported `DELETED`, one that starts matching `ADDED`, as
//! upstream's watch cache does. A version older than the store keeps gives one `ERROR` event
//! with a 410 `Expired` Status. The stream ends at `timeoutSeconds` (upstream's default: a random
//! 30-60 minutes), when the client leaves, or when the cluster stops.
//!
//! Under `Accept: ...as=Table` each event carries a one-row Table (kubectl `get -w`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Context;
use super::body::{self, Body};
use super::query::{Filter, Query};
use super::resource::Format;
use super::routes::ResourcePath;
use super::status::ApiError;
use super::table::IncludeObject;
use crate::error::Error;
use crate::object::{Kind, Object, ObjectKey};
use crate::store::{EventType, WatchEvent};

/// Starts a watch and returns the streaming response.
pub fn serve(
    context: &Arc<Context>,
    target: &ResourcePath,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(query)?;
    let timeout = match query.int("timeoutSeconds")? {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds.unsigned_abs()),
        _ => Duration::from_secs(1800 + rand::random_range(0..1800)),
    };
    let scope = Scope {
        kind: target.kind,
        namespace: target.namespace.clone(),
        filter,
        format,
        include: IncludeObject::parse(query.get("includeObject")),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let requested = query.get("resourceVersion").unwrap_or_default();
    let start = match requested {
        "" | "0" => {
            let rv = context.store.resource_version();
            let current = context.store.list(target.kind, target.namespace.as_deref());
            context.store.watch_from(rv).map(|(past, live)| {
                let initial: Vec<WatchEvent> = current
                    .into_iter()
                    .map(|object| WatchEvent {
                        event_type: EventType::Added,
                        resource_version: rv,
                        object: Arc::new(object),
                    })
                    .collect();
                (initial.into_iter().chain(past).collect::<Vec<_>>(), live)
            })
        }
        text => {
            let rv: u64 = text.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {text:?}: not a number"))
            })?;
            context.store.watch_from(rv)
        }
    };
    match start {
        Ok((past, live)) => {
            let matching: HashSet<ObjectKey> = if scope.filter_is_empty() {
                HashSet::new()
            } else {
                context
                    .store
                    .list(target.kind, target.namespace.as_deref())
                    .into_iter()
                    .filter(|o| scope.filter.matches(o))
                    .map(|o| o.key())
                    .collect()
            };
            let stream = Stream {
                scope,
                matching,
                tx,
            };
            let cancel = context.cancel.clone();
            context
                .tracker
                .spawn(stream.run(past, live, timeout, cancel));
        }
        Err(err @ Error::Gone { .. }) => {
            let status = ApiError::from(err).to_json();
            let _ = tx.try_send(line(&json!({"type": "ERROR", "object": status})));
        }
        Err(err) => return Err(err.into()),
    }
    Ok(body::with_type(
        StatusCode::OK,
        "application/json",
        Body::Channel(rx),
    ))
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).expect("JSON values always serialize");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// What a watch covers and how it encodes objects.
struct Scope {
    kind: Kind,
    namespace: Option<String>,
    filter: Filter,
    format: Format,
    include: IncludeObject,
}

impl Scope {
    fn filter_is_empty(&self) -> bool {
        self.filter.labels.is_empty() && self.filter.fields.is_empty()
    }

    fn covers(&self, object: &Object) -> bool {
        object.kind() == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| !self.kind.namespaced() || object.namespace() == ns)
    }

    fn encode(&self, event_type: &str, object: &Object) -> Bytes {
        // `covers` has checked the object is of `self.kind`.
        let encoded = self.format.encode(object, self.include);
        line(&json!({"type": event_type, "object": encoded}))
    }
}

/// One running watch.
struct Stream {
    scope: Scope,
    /// Keys of the objects that matched the selectors when last seen.
    matching: HashSet<ObjectKey>,
    tx: mpsc::Sender<Bytes>,
}

impl Stream {
    async fn run(
        mut self,
        past: Vec<WatchEvent>,
        mut live: broadcast::Receiver<WatchEvent>,
        timeout: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut last_seen = 0;
        for event in past {
            last_seen = event.resource_version.max(last_seen);
            if !self.send(&event).await {
                return;
            }
        }
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                event = live.recv() => event,
            };
            match event {
                Ok(event) => {
                    // The subscription may repeat changes already sent from the history.
                    if event.resource_version <= last_seen {
                        continue;
                    }
                    last_seen = event.resource_version.max(last_seen);
                    if !self.send(&event).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let status = ApiError::new(
                        StatusCode::GONE,
                        "Expired",
                        "the watch fell behind the store's changes; watch again from a new list",
                    )
                    .to_json();
                    let _ = self
                        .tx
                        .send(line(&json!({"type": "ERROR", "object": status})))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Sends one store change if the watch covers it; false once the client is gone.
    async fn send(&mut self, event: &WatchEvent) -> bool {
        let object = event.object.as_ref();
        if !self.scope.covers(object) {
            return true;
        }
        let Some(event_type) = self.translate(event.event_type, object) else {
            return true;
        };
        self.tx
            .send(self.scope.encode(event_type, object))
            .await
            .is_ok()
    }

    /// The event type the client sees, given whether the object matched before and does now.
    fn translate(&mut self, event_type: EventType, object: &Object) -> Option<&'static str> {
        if self.scope.filter_is_empty() {
            return Some(event_type.as_str());
        }
        let key = object.key();
        let now = self.scope.filter.matches(object);
        let before = self.matching.contains(&key);
        match event_type {
            EventType::Deleted => {
                self.matching.remove(&key);
                (before || now).then_some("DELETED")
            }
            _ if now => {
                self.matching.insert(key);
                Some(if before && event_type == EventType::Modified {
                    "MODIFIED"
                } else {
                    "ADDED"
                })
            }
            _ => {
                self.matching.remove(&key);
                before.then_some("DELETED")
            }
        }
    }
}
