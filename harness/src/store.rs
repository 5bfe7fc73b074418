//! The [`Store`]: the one place objects live and the only code that mutates them.
//!
//! It plays the API server's storage role: it assigns uid, resourceVersion, generation and
//! creationTimestamp, applies defaults and validation on every write, turns a pod deletion into a
//! graceful `deletionTimestamp`, cascades deletions along ownerReferences (background
//! propagation) and publishes every change as a [`WatchEvent`] with a resourceVersion, keeping a
//! bounded history so that a watcher can resume from an older version.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Event, EventSource, Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::object::{Kind, Object, ObjectKey, Resource};
use crate::selector::Selector;
use crate::{defaults, validate};

/// How many past changes the store keeps for watchers that resume from a resourceVersion.
const HISTORY: usize = 50_000;
/// How many Event objects the store keeps before dropping the oldest.
const MAX_EVENTS: usize = 5_000;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The word a Kubernetes watch stream uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch stream reports it.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub event_type: EventType,
    /// The object after the change (for `Deleted`, its last state).
    pub object: Arc<Object>,
    pub resource_version: u64,
}

/// How a deletion treats the object's dependents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete dependents after the owner is gone (kubectl's default; Foreground is treated the same).
    #[default]
    Background,
    /// Leave dependents, removing their ownerReference.
    Orphan,
}

/// Options of a delete, as `DeleteOptions` carries them.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteOptions {
    /// Overrides the pod's terminationGracePeriodSeconds; `Some(0)` removes at once.
    pub grace_period_seconds: Option<i64>,
    pub propagation: Propagation,
}

/// The object store. Cheap to share: wrap it in an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<WatchEvent>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<ObjectKey, Object>,
    resource_version: u64,
    history: VecDeque<WatchEvent>,
    /// Every stored Event by resourceVersion, oldest first: their count, and the oldest without
    /// a scan.
    event_order: std::collections::BTreeSet<(u64, ObjectKey)>,
}

impl Store {
    /// An empty store holding the `default` and `kube-system` namespaces.
    pub fn new() -> Arc<Store> {
        let (changes, _) = broadcast::channel(16_384);
        let store = Arc::new(Store {
            inner: Mutex::new(Inner::default()),
            changes,
        });
        for name in ["default", "kube-system"] {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            store
                .create(ns.into())
                .expect("a fresh store accepts its namespaces");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// Subscribes to every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.changes.subscribe()
    }

    /// The changes after `resource_version`, and a subscription for those that follow, with no
    /// gap between the two. `Gone` if that version has left the history.
    pub fn watch_from(
        &self,
        resource_version: u64,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>)> {
        let inner = self.lock();
        let receiver = self.changes.subscribe();
        let oldest = inner.history.front().map_or(inner.resource_version, |e| {
            e.resource_version.saturating_sub(1)
        });
        if resource_version < oldest {
            return Err(Error::Gone {
                requested: resource_version,
                oldest,
            });
        }
        let past = inner
            .history
            .iter()
            .filter(|e| e.resource_version > resource_version)
            .cloned()
            .collect();
        Ok((past, receiver))
    }

    /// One object, if it exists.
    pub fn get(&self, key: &ObjectKey) -> Option<Object> {
        self.lock().objects.get(key).cloned()
    }

    /// One typed object, if it exists.
    pub fn get_as<K: Resource>(&self, namespace: &str, name: &str) -> Option<K> {
        self.get(&ObjectKey::new(K::KIND_ENUM, namespace, name))
            .and_then(|o| K::try_from(o).ok())
    }

    /// Every object of `kind`, in `namespace` (all namespaces when `None`), in name order.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Object> {
        let inner = self.lock();
        inner
            .objects
            .range(kind_range(kind, namespace))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Every object of type `K` in `namespace` whose labels match `selector`.
    pub fn list_as<K: Resource>(&self, namespace: Option<&str>, selector: &Selector) -> Vec<K> {
        let inner = self.lock();
        inner
            .objects
            .range(kind_range(K::KIND_ENUM, namespace))
            .filter(|(_, o)| selector.matches(o.labels()))
            .filter_map(|(_, o)| K::try_from(o.clone()).ok())
            .collect()
    }

    /// Creates an object, as a POST does: defaults, validation, uid, resourceVersion.
    pub fn create(&self, mut object: Object) -> Result<Object> {
        let mut inner = self.lock();
        prepare_new(&mut object, &inner)?;
        let key = object.key();
        if inner.objects.contains_key(&key) {
            return Err(Error::AlreadyExists(key));
        }
        admit(&mut object, None)?;
        let meta = object.meta_mut();
        meta.uid = Some(new_uid());
        meta.creation_timestamp = Some(Time(Timestamp::now()));
        meta.deletion_timestamp = None;
        meta.resource_version = None;
        if matches!(
            key.kind,
            Kind::Deployment | Kind::ReplicaSet | Kind::EndpointSlice
        ) {
            meta.generation = Some(1);
        }
        if key.kind == Kind::Event && inner.event_order.len() >= MAX_EVENTS {
            self.drop_oldest_event(&mut inner);
        }
        Ok(self.commit(&mut inner, EventType::Added, object))
    }

    /// Creates a typed object.
    pub fn create_as<K: Resource>(&self, object: K) -> Result<K> {
        self.create(object.into())
            .map(|o| K::try_from(o).expect("the store returns the kind it was given"))
    }

    /// Replaces an object, as a PUT does. A set resourceVersion must be the current one.
    /// Server-managed metadata (uid, creation and deletion timestamps) is kept.
    pub fn update(&self, object: Object) -> Result<Object> {
        let key = object.key();
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&key)
            .ok_or_else(|| Error::NotFound(key.clone()))?;
        if let Some(rv) = &object.meta().resource_version
            && Some(rv) != current.meta().resource_version.as_ref()
        {
            return Err(Error::Conflict(key));
        }
        let current = current.clone();
        self.replace(&mut inner, &current, object)
    }

    /// Edits an object in place under the store's lock: the read-modify-write that controllers
    /// and the kubelet use, which cannot conflict. Nothing is written when `edit` changes
    /// nothing. Returns the stored object after the edit.
    pub fn modify<K: Resource, R>(
        &self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut K) -> R,
    ) -> Result<(K, R)> {
        let key = ObjectKey::new(K::KIND_ENUM, namespace, name);
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::NotFound(key.clone()))?;
        let mut typed = K::try_from(current.clone()).expect("key kind matches");
        let result = edit(&mut typed);
        let edited: Object = typed.into();
        if edited == current {
            let typed = K::try_from(current).expect("key kind matches");
            return Ok((typed, result));
        }
        let stored = self.replace(&mut inner, &current, edited)?;
        Ok((K::try_from(stored).expect("key kind matches"), result))
    }

    fn replace(&self, inner: &mut Inner, current: &Object, mut object: Object) -> Result<Object> {
        let key = current.key();
        {
            let (old, new) = (current.meta(), object.meta_mut());
            new.uid = old.uid.clone();
            new.creation_timestamp = old.creation_timestamp.clone();
            new.deletion_timestamp = old.deletion_timestamp.clone();
            new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
            new.namespace = old.namespace.clone();
            new.generation = old.generation;
        }
        admit(&mut object, Some(current))?;
        if spec_of(&object) != spec_of(current)
            && let Some(generation) = object.meta_mut().generation.as_mut()
        {
            *generation += 1;
        }
        let _ = key;
        Ok(self.commit(inner, EventType::Modified, object))
    }

    /// Deletes an object. A pod with a grace period is only marked (deletionTimestamp); the
    /// kubelet terminates it and then calls [`Store::remove_terminated_pod`]. Dependents are
    /// handled by `options.propagation`.
    pub fn delete(&self, key: &ObjectKey, options: DeleteOptions) -> Result<Object> {
        let mut inner = self.lock();
        self.delete_locked(&mut inner, key, options)
    }

    fn delete_locked(
        &self,
        inner: &mut Inner,
        key: &ObjectKey,
        options: DeleteOptions,
    ) -> Result<Object> {
        let current = inner
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(key.clone()))?;
        if let Object::Pod(pod) = &current {
            let spec_grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            let grace = options.grace_period_seconds.unwrap_or(spec_grace).max(0);
            let marked = pod.metadata.deletion_grace_period_seconds;
            let shorter = marked.is_none_or(|m| grace < m);
            if grace > 0 {
                if !shorter {
                    return Ok(current);
                }
                let mut marked = current.clone();
                let meta = marked.meta_mut();
                meta.deletion_grace_period_seconds = Some(grace);
                meta.deletion_timestamp =
                    Some(Time(Timestamp::now() + SignedDuration::from_secs(grace)));
                return Ok(self.commit(inner, EventType::Modified, marked));
            }
        }
        let removed_object = inner.objects.remove(key);
        if key.kind == Kind::Event
            && let Some(rv) = removed_object.as_ref().and_then(rv_of)
        {
            inner.event_order.remove(&(rv, key.clone()));
        }
        let removed = self.publish(inner, EventType::Deleted, current);
        self.cascade(inner, &removed, options.propagation);
        if key.kind == Kind::Namespace {
            let contents: Vec<ObjectKey> = inner
                .objects
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            for k in contents {
                let _ = self.delete_locked(inner, &k, DeleteOptions::default());
            }
        }
        Ok(removed)
    }

    /// Removes a pod whose containers have all stopped after its deletion, if it is still the
    /// same pod (same uid).
    pub fn remove_terminated_pod(&self, namespace: &str, name: &str, uid: &str) {
        let key = ObjectKey::new(Kind::Pod, namespace, name);
        let mut inner = self.lock();
        if inner.objects.get(&key).is_some_and(|o| o.uid() == uid) {
            let options = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let _ = self.delete_locked(&mut inner, &key, options);
        }
    }

    fn cascade(&self, inner: &mut Inner, owner: &Object, propagation: Propagation) {
        let uid = owner.uid().to_owned();
        let dependents: Vec<ObjectKey> = inner
            .objects
            .iter()
            .filter(|(_, o)| {
                o.meta()
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            match propagation {
                Propagation::Background => {
                    let _ = self.delete_locked(inner, &key, DeleteOptions::default());
                }
                Propagation::Orphan => {
                    let mut dependent = inner.objects[&key].clone();
                    if let Some(refs) = dependent.meta_mut().owner_references.as_mut() {
                        refs.retain(|r| r.uid != uid);
                    }
                    self.commit(inner, EventType::Modified, dependent);
                }
            }
        }
    }

    fn drop_oldest_event(&self, inner: &mut Inner) {
        let oldest = inner.event_order.first().map(|(_, k)| k.clone());
        if let Some(key) = oldest {
            let _ = self.delete_locked(inner, &key, DeleteOptions::default());
        }
    }

    /// Records a Kubernetes Event about `involved`, as `kubectl describe` shows them.
    pub fn record_event(
        &self,
        involved: &Object,
        event_type: &str,
        reason: &str,
        message: impl Into<String>,
        component: &str,
    ) {
        let now = Time(Timestamp::now());
        let namespace = if involved.namespace().is_empty() {
            "default"
        } else {
            involved.namespace()
        };
        let message = message.into();
        // The same event again is counted, not repeated (`(x3 over 20s)` in describe).
        let prefix = format!("{}.", involved.name());
        let inner = self.lock();
        let repeat = inner
            .objects
            .range(ObjectKey::new(Kind::Event, namespace, &prefix)..)
            .take_while(|(k, _)| {
                k.kind == Kind::Event && k.namespace == namespace && k.name.starts_with(&prefix)
            })
            .filter_map(|(_, o)| match o {
                Object::Event(e) => Some(e),
                _ => None,
            })
            .find(|e| {
                e.involved_object.uid.as_deref() == Some(involved.uid())
                    && e.type_.as_deref() == Some(event_type)
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref() == Some(message.as_str())
                    && e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(component)
            })
            .cloned();
        drop(inner);
        if let Some(event) = repeat {
            let name = event.metadata.name.unwrap_or_default();
            let counted = self.modify::<Event, _>(namespace, &name, |e| {
                e.count = Some(e.count.unwrap_or(1) + 1);
                e.last_timestamp = Some(now.clone());
            });
            if counted.is_ok() {
                return;
            }
        }
        // Upstream names events `<object>.<hex nanoseconds>`, so names sort by time.
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = u64::try_from(now.0.as_nanosecond()).unwrap_or_default();
        let stamp = LAST
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |last| Some(nanos.max(last + 1)),
            )
            .map_or(nanos, |last| nanos.max(last + 1));
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{stamp:x}", involved.name())),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(involved.kind().api_version().to_owned()),
                kind: Some(involved.kind().name().to_owned()),
                name: Some(involved.name().to_owned()),
                namespace: Some(namespace.to_owned()),
                uid: Some(involved.uid().to_owned()),
                resource_version: involved.meta().resource_version.clone(),
                ..Default::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(event_type.to_owned()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(component.to_owned()),
                host: None,
            }),
            ..Default::default()
        };
        if let Err(err) = self.create(event.into()) {
            tracing::debug!(%err, "event not recorded");
        }
    }

    /// Stores `object` under the next resourceVersion and publishes the change.
    fn commit(&self, inner: &mut Inner, event_type: EventType, mut object: Object) -> Object {
        inner.resource_version += 1;
        object.meta_mut().resource_version = Some(inner.resource_version.to_string());
        let key = object.key();
        let previous = inner.objects.insert(key.clone(), object.clone());
        if key.kind == Kind::Event {
            if let Some(rv) = previous.as_ref().and_then(rv_of) {
                inner.event_order.remove(&(rv, key.clone()));
            }
            inner.event_order.insert((inner.resource_version, key));
        }
        self.publish(inner, event_type, object)
    }

    /// Publishes a change; deletions also take a resourceVersion of their own.
    fn publish(&self, inner: &mut Inner, event_type: EventType, mut object: Object) -> Object {
        if event_type == EventType::Deleted {
            inner.resource_version += 1;
            object.meta_mut().resource_version = Some(inner.resource_version.to_string());
        }
        let event = WatchEvent {
            event_type,
            object: Arc::new(object.clone()),
            resource_version: inner.resource_version,
        };
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(event.clone());
        let _ = self.changes.send(event);
        object
    }
}

/// Fills in namespace and generateName, and checks the namespace exists.
fn prepare_new(object: &mut Object, inner: &Inner) -> Result<()> {
    let kind = object.kind();
    let meta = object.meta_mut();
    if kind.namespaced() {
        let namespace = meta
            .namespace
            .get_or_insert_with(|| "default".into())
            .clone();
        let ns_key = ObjectKey::new(Kind::Namespace, "", &namespace);
        if !inner.objects.contains_key(&ns_key) {
            return Err(Error::NotFound(ns_key));
        }
    } else {
        meta.namespace = None;
    }
    if meta.name.as_deref().unwrap_or_default().is_empty() {
        match &meta.generate_name {
            Some(prefix) if !prefix.is_empty() => {
                meta.name = Some(format!("{prefix}{}", crate::names::random_suffix()));
            }
            _ => {
                let key = ObjectKey::new(kind, "", "");
                return Err(Error::invalid(
                    key,
                    "metadata.name",
                    "name or generateName is required",
                ));
            }
        }
    }
    Ok(())
}

/// What every write goes through before it is stored (and a dry run instead of storing): the
/// API defaults, then validation against `old`, the stored version of an update.
pub(crate) fn admit(object: &mut Object, old: Option<&Object>) -> Result<()> {
    defaults::apply(object);
    let causes = validate::validate(object, old);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            key: object.key(),
            causes,
        })
    }
}

/// What bumps `metadata.generation` when it changes: the spec; for an EndpointSlice, which has
/// none, everything but the metadata, and its labels (upstream's EndpointSlice strategy).
fn spec_of(object: &Object) -> Option<serde_json::Value> {
    let mut json = object.to_json();
    if let Object::EndpointSlice(slice) = object {
        let labels = serde_json::to_value(&slice.metadata.labels).ok()?;
        json["metadata"] = labels;
        return Some(json);
    }
    json.get("spec").cloned()
}

fn kind_range(
    kind: Kind,
    namespace: Option<&str>,
) -> (std::ops::Bound<ObjectKey>, std::ops::Bound<ObjectKey>) {
    use std::ops::Bound;
    match namespace.filter(|_| kind.namespaced()) {
        Some(ns) => (
            Bound::Included(ObjectKey::new(kind, ns, "")),
            Bound::Excluded(ObjectKey::new(kind, &format!("{ns}\0"), "")),
        ),
        None => {
            let next = Kind::ALL
                .iter()
                .copied()
                .find(|k| *k > kind)
                .map(|k| Bound::Excluded(ObjectKey::new(k, "", "")));
            (
                Bound::Included(ObjectKey::new(kind, "", "")),
                next.unwrap_or(Bound::Unbounded),
            )
        }
    }
}

fn new_uid() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn rv_of(object: &Object) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    /// Any namespaced object will do as the subject of events.
    fn subject(store: &Store, name: &str) -> Object {
        let subject = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        store
            .create(subject.into())
            .expect("a ConfigMap is accepted")
    }

    fn events(store: &Store) -> Vec<Event> {
        store
            .list(Kind::Event, Some("default"))
            .into_iter()
            .filter_map(|o| Event::try_from(o).ok())
            .collect()
    }

    #[test]
    fn the_same_event_again_is_counted_and_a_prefix_twin_is_not_confused() {
        let store = Store::new();
        let web = subject(&store, "web");
        let twin = subject(&store, "web.1");
        for _ in 0..3 {
            store.record_event(&web, "Normal", "Pulled", "already present", "kubelet");
        }
        store.record_event(&twin, "Normal", "Pulled", "already present", "kubelet");
        store.record_event(&web, "Warning", "Unhealthy", "probe failed", "kubelet");
        let mut seen: Vec<(String, String, i32)> = events(&store)
            .into_iter()
            .map(|e| {
                (
                    e.involved_object.name.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.count.unwrap_or(1),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("web".into(), "Pulled".into(), 3),
                ("web".into(), "Unhealthy".into(), 1),
                ("web.1".into(), "Pulled".into(), 1),
            ]
        );
    }

    #[test]
    fn past_the_limit_the_oldest_event_goes_first() {
        let store = Store::new();
        let web = subject(&store, "web");
        for n in 0..MAX_EVENTS + 10 {
            store.record_event(&web, "Normal", "Tick", format!("tick {n}"), "test");
        }
        let kept = events(&store);
        assert_eq!(kept.len(), MAX_EVENTS);
        let mut numbers: Vec<usize> = kept
            .iter()
            .filter_map(|e| e.message.as_deref()?.strip_prefix("tick ")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers.first(), Some(&10));
        assert_eq!(numbers.last(), Some(&(MAX_EVENTS + 9)));

        // A deleted event leaves the order too: the next one dropped is the oldest remaining.
        let oldest = kept
            .iter()
            .find(|e| e.message.as_deref() == Some("tick 10"))
            .and_then(|e| e.metadata.name.clone())
            .expect("tick 10 is kept");
        store
            .delete(
                &ObjectKey::new(Kind::Event, "default", &oldest),
                DeleteOptions::default(),
            )
            .expect("an event can be deleted");
        store.record_event(&web, "Normal", "Tick", "one more", "test");
        store.record_event(&web, "Normal", "Tick", "and another", "test");
        let messages: Vec<String> = events(&store)
            .into_iter()
            .filter_map(|e| e.message)
            .collect();
        assert_eq!(messages.len(), MAX_EVENTS);
        assert!(!messages.iter().any(|m| m == "tick 10" || m == "tick 11"));
        assert!(messages.iter().any(|m| m == "tick 12"));
    }
}
