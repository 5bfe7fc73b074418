//! A pod's volumes on the host: ConfigMap, Secret, downward API and projected volumes written
//! with the kubelet's atomic layout, emptyDir as a plain directory, hostPath as the host's own.
//!
//! The layout is the one `AtomicWriter` (`pkg/volume/util/atomic_writer.go`) produces, because
//! programs that watch a mounted ConfigMap depend on it:
//!
//! ```text
//! ..2026_11_22_00_17_35.123456789/myconfig.txt   the files, with their modes
//! ..data -> ..2026_11_22_00_17_35.123456789      swapped atomically on update
//! myconfig.txt -> ..data/myconfig.txt            one symlink per top-level name
//! ```
//!
//! An update writes a new timestamped directory, points a `..data_tmp` symlink at it, renames
//! that over `..data` (the one atomic step), fixes the top-level symlinks and removes the old
//! directory. Nothing is written when the content and modes are unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};

use super::env::{PodFacts, Sources, field_value, render_map};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
/// Upstream's default file mode for projected files (0644).
const DEFAULT_MODE: u32 = 0o644;

/// One file of a projected volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileData {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Relative path -> content.
pub type Payload = BTreeMap<String, FileData>;

/// A volume that could not be set up, with the kubelet's `FailedMount` wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct MountError {
    pub volume: String,
    pub message: String,
}

/// Where a pod's volumes live on the host.
#[derive(Debug)]
pub struct PodVolumes {
    root: PathBuf,
    paths: BTreeMap<String, PathBuf>,
    /// Volumes kept up to date by [`PodVolumes::sync`] (ConfigMap, Secret, downward API,
    /// projected).
    atomic: BTreeSet<String>,
}

impl PodVolumes {
    /// Volumes of one pod, under `root` (a per-pod directory of the kubelet's state dir).
    pub fn new(root: PathBuf) -> PodVolumes {
        PodVolumes {
            root,
            paths: BTreeMap::new(),
            atomic: BTreeSet::new(),
        }
    }

    /// Sets up every volume not set up yet; stops at the first that fails.
    pub fn setup(
        &mut self,
        pod: &Pod,
        sources: &impl Sources,
        facts: &PodFacts,
    ) -> Result<(), MountError> {
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if self.paths.contains_key(&volume.name) {
                continue;
            }
            let failed = |message: String| MountError {
                volume: volume.name.clone(),
                message,
            };
            let dir = self.root.join(&volume.name);
            if let Some(host) = &volume.host_path {
                let path = PathBuf::from(&host.path);
                if host.type_.as_deref() == Some("DirectoryOrCreate") {
                    fs::create_dir_all(&path)
                        .map_err(|e| failed(format!("cannot create {}: {e}", path.display())))?;
                }
                if !path.exists() && host.type_.as_deref().is_some_and(|t| !t.is_empty()) {
                    return Err(failed(format!(
                        "hostPath type check failed: {} is not a directory",
                        host.path
                    )));
                }
                self.paths.insert(volume.name.clone(), path);
            } else if volume.empty_dir.is_some() {
                fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
                self.paths.insert(volume.name.clone(), dir);
            } else {
                let payload = payload(volume, pod, sources, facts).map_err(failed)?;
                fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
                write_atomic(&dir, &payload).map_err(|e| failed(e.to_string()))?;
                self.atomic.insert(volume.name.clone());
                self.paths.insert(volume.name.clone(), dir);
            }
        }
        Ok(())
    }

    /// Brings the atomic volumes up to date. A source that is gone keeps its last content, as
    /// upstream. Returns the volumes that changed, and the failures.
    pub fn sync(
        &self,
        pod: &Pod,
        sources: &impl Sources,
        facts: &PodFacts,
    ) -> (Vec<String>, Vec<MountError>) {
        let mut changed = Vec::new();
        let mut failed = Vec::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if !self.atomic.contains(&volume.name) {
                continue;
            }
            let result = payload(volume, pod, sources, facts).and_then(|p| {
                write_atomic(&self.root.join(&volume.name), &p).map_err(|e| e.to_string())
            });
            match result {
                Ok(true) => changed.push(volume.name.clone()),
                Ok(false) => {}
                Err(message) => failed.push(MountError {
                    volume: volume.name.clone(),
                    message,
                }),
            }
        }
        (changed, failed)
    }

    /// The host directory of a volume that is set up.
    pub fn path(&self, volume: &str) -> Option<&Path> {
        self.paths.get(volume).map(PathBuf::as_path)
    }

    /// Whether the volume is one of the atomic (ConfigMap-like) kind.
    pub fn is_atomic(&self, volume: &str) -> bool {
        self.atomic.contains(volume)
    }

    /// Removes every volume directory the kubelet created (never a hostPath).
    pub fn teardown(&self) {
        if let Err(e) = fs::remove_dir_all(&self.root)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.root.display(), "cannot remove pod volumes: {e}");
        }
    }
}

/// The files of an atomic volume, or the reason it cannot be set up (upstream's wording).
pub fn payload(
    volume: &Volume,
    pod: &Pod,
    sources: &impl Sources,
    facts: &PodFacts,
) -> Result<Payload, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Payload::new();
    if let Some(s) = &volume.config_map {
        let source = Keyed::config_map(&s.name, s.items.as_deref(), s.optional);
        let mode = mode_of(s.default_mode);
        source.files(source.keys(sources, namespace), mode, &mut out)?;
    } else if let Some(s) = &volume.secret {
        let name = s.secret_name.as_deref().unwrap_or_default();
        let source = Keyed::secret(name, s.items.as_deref(), s.optional);
        let mode = mode_of(s.default_mode);
        source.files(source.keys(sources, namespace), mode, &mut out)?;
    } else if let Some(source) = &volume.downward_api {
        let mode = mode_of(source.default_mode);
        downward_files(source.items.as_deref(), pod, facts, mode, &mut out)?;
    } else if let Some(projected) = &volume.projected {
        let mode = mode_of(projected.default_mode);
        for source in projected.sources.iter().flatten() {
            if let Some(s) = &source.config_map {
                let source = Keyed::config_map(&s.name, s.items.as_deref(), s.optional);
                source.files(source.keys(sources, namespace), mode, &mut out)?;
            } else if let Some(s) = &source.secret {
                let source = Keyed::secret(&s.name, s.items.as_deref(), s.optional);
                source.files(source.keys(sources, namespace), mode, &mut out)?;
            } else if let Some(s) = &source.downward_api {
                downward_files(s.items.as_deref(), pod, facts, mode, &mut out)?;
            }
            // serviceAccountToken and clusterTrustBundle sources have nothing to project here.
        }
    } else {
        return Err("volume type is not supported by the harness (supported: configMap, secret, emptyDir, hostPath, downwardAPI, projected)".to_owned());
    }
    Ok(out)
}

fn mode_of(mode: Option<i32>) -> u32 {
    mode.map_or(DEFAULT_MODE, |m| (m as u32) & 0o7777)
}

/// A ConfigMap or Secret whose keys a volume (or a projected volume's source) projects as
/// files. The two work alike but for where the keys are and how upstream words a missing
/// object or key.
#[derive(Clone, Copy, Debug)]
struct Keyed<'a> {
    secret: bool,
    name: &'a str,
    /// The keys to project, each at its path; all of them, at their own names, when `None`.
    items: Option<&'a [KeyToPath]>,
    /// A missing object or key is no error.
    optional: bool,
}

impl<'a> Keyed<'a> {
    fn config_map(name: &'a str, items: Option<&'a [KeyToPath]>, optional: Option<bool>) -> Self {
        Keyed {
            secret: false,
            name,
            items,
            optional: optional == Some(true),
        }
    }

    fn secret(name: &'a str, items: Option<&'a [KeyToPath]>, optional: Option<bool>) -> Self {
        Keyed {
            secret: true,
            ..Keyed::config_map(name, items, optional)
        }
    }

    /// The object's keys as bytes (a ConfigMap's `binaryData` included, a Secret's
    /// `stringData` included and winning); `None` when the object does not exist.
    fn keys(&self, sources: &impl Sources, namespace: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        if self.secret {
            sources.secret(namespace, self.name).map(secret_keys)
        } else {
            sources
                .config_map(namespace, self.name)
                .map(config_map_keys)
        }
    }

    /// Adds the files to `out`, from `keys` as [`Keyed::keys`] found them.
    fn files(
        &self,
        keys: Option<BTreeMap<String, Vec<u8>>>,
        mode: u32,
        out: &mut Payload,
    ) -> Result<(), String> {
        let kind = if self.secret { "secret" } else { "configmap" };
        let Some(data) = keys else {
            return if self.optional {
                Ok(())
            } else {
                Err(format!("{kind} \"{}\" not found", self.name))
            };
        };
        match self.items.filter(|i| !i.is_empty()) {
            None => {
                for (key, bytes) in data {
                    out.insert(key, FileData { bytes, mode });
                }
            }
            Some(items) => {
                for item in items {
                    match data.get(&item.key) {
                        Some(bytes) => {
                            out.insert(
                                item.path.clone(),
                                FileData {
                                    bytes: bytes.clone(),
                                    mode: item.mode.map_or(mode, |m| (m as u32) & 0o7777),
                                },
                            );
                        }
                        None if self.optional => {}
                        None if self.secret => {
                            return Err(format!(
                                "references non-existent secret key: {}",
                                item.key
                            ));
                        }
                        None => {
                            return Err(format!(
                                "configmap references non-existent config key: {}",
                                item.key
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A ConfigMap's keys as bytes, `binaryData` included.
fn config_map_keys(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let data = cm.data.unwrap_or_default().into_iter();
    let mut keys: BTreeMap<String, Vec<u8>> = data.map(|(k, v)| (k, v.into_bytes())).collect();
    keys.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    keys
}

/// A Secret's keys as bytes, `stringData` included (and winning, as on the API server).
fn secret_keys(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    let data = secret.data.unwrap_or_default().into_iter();
    let mut keys: BTreeMap<String, Vec<u8>> = data.map(|(k, v)| (k, v.0)).collect();
    keys.extend(
        secret
            .string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    keys
}

fn downward_files(
    items: Option<&[DownwardAPIVolumeFile]>,
    pod: &Pod,
    facts: &PodFacts,
    mode: u32,
    out: &mut Payload,
) -> Result<(), String> {
    for item in items.into_iter().flatten() {
        let text = match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), _) => match f.field_path.as_str() {
                "metadata.labels" => render_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => render_map(pod.metadata.annotations.as_ref()),
                path => field_value(pod, path, facts)?,
            },
            (None, Some(_)) => {
                return Err("resourceFieldRef is not supported by the harness".to_owned());
            }
            (None, None) => String::new(),
        };
        out.insert(
            item.path.clone(),
            FileData {
                bytes: text.into_bytes(),
                mode: item.mode.map_or(mode, |m| (m as u32) & 0o7777),
            },
        );
    }
    Ok(())
}

/// Writes `payload` into `dir` with the atomic layout (see the module docs). Returns whether
/// anything changed.
pub fn write_atomic(dir: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        validate_path(path)?;
    }
    let old_ts = fs::read_link(dir.join(DATA)).ok();
    if let Some(old) = &old_ts
        && same_content(&dir.join(old), payload)
        && payload
            .keys()
            .all(|p| dir.join(top(p)).symlink_metadata().is_ok())
    {
        return Ok(false);
    }

    // (1) A new timestamped directory with the files.
    let ts_name = loop {
        let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S");
        let name = format!("..{stamp}.{}", rand::random::<u32>());
        if !dir.join(&name).exists() {
            break name;
        }
    };
    let ts_dir = dir.join(&ts_name);
    fs::create_dir(&ts_dir)?;
    fs::set_permissions(&ts_dir, fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.bytes)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))?;
    }

    // (2) `..data_tmp` -> new dir, renamed over `..data`: the atomic switch.
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&ts_name, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;

    // (3) The user-visible symlinks.
    let wanted: BTreeSet<&str> = payload.keys().map(|p| top(p)).collect();
    for name in &wanted {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            symlink(Path::new(DATA).join(name), &link)?;
        }
    }

    // (4) The old directory and the names that are gone.
    if let Some(old) = old_ts
        && old != Path::new(&ts_name)
    {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("..") && !wanted.contains(name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(true)
}

/// The first component of a payload path: the name of its top-level symlink.
fn top(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

fn validate_path(path: &str) -> io::Result<()> {
    let p = Path::new(path);
    let bad = path.is_empty()
        || p.is_absolute()
        || path.starts_with("..")
        || p.components().any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path {path:?} in volume payload"),
        ));
    }
    Ok(())
}

fn same_content(ts_dir: &Path, payload: &Payload) -> bool {
    let mut count = 0;
    for (path, file) in payload {
        let target = ts_dir.join(path);
        let Ok(meta) = fs::metadata(&target) else {
            return false;
        };
        if meta.permissions().mode() & 0o7777 != file.mode
            || fs::read(&target).ok().as_ref() != Some(&file.bytes)
        {
            return false;
        }
        count += 1;
    }
    count_files(ts_dir) == count
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str, mode: u32) -> FileData {
        FileData {
            bytes: text.as_bytes().to_vec(),
            mode,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_the_kubelet_layout_and_swaps_data_on_update() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut payload = Payload::new();
        payload.insert("myconfig.txt".into(), file("I am hungry.", 0o644));
        payload.insert("conf/nested.ini".into(), file("a=1", 0o600));
        assert!(write_atomic(dir, &payload).unwrap());

        let listing = names(dir);
        assert_eq!(listing.len(), 4, "{listing:?}");
        let ts = fs::read_link(dir.join("..data")).unwrap();
        let ts = ts.to_str().unwrap().to_owned();
        assert!(ts.starts_with("..2"), "{ts}");
        assert!(listing.contains(&ts));
        assert_eq!(
            fs::read_link(dir.join("myconfig.txt")).unwrap(),
            Path::new("..data/myconfig.txt")
        );
        assert_eq!(
            fs::read_link(dir.join("conf")).unwrap(),
            Path::new("..data/conf")
        );
        assert_eq!(
            fs::read_to_string(dir.join("myconfig.txt")).unwrap(),
            "I am hungry."
        );
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("conf/nested.ini"), 0o600);
        assert_eq!(mode("myconfig.txt"), 0o644);

        // Unchanged content: nothing is written.
        assert!(!write_atomic(dir, &payload).unwrap());
        assert_eq!(fs::read_link(dir.join("..data")).unwrap(), Path::new(&ts));

        // An update: new directory, `..data` swapped, old directory and dropped names gone.
        let mut next = Payload::new();
        next.insert("myconfig.txt".into(), file("I am full.", 0o644));
        next.insert("extra".into(), file("x", 0o644));
        assert!(write_atomic(dir, &next).unwrap());
        let ts2 = fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(ts2, Path::new(&ts));
        assert!(!dir.join(&ts).exists());
        assert!(dir.join("conf").symlink_metadata().is_err());
        assert!(!dir.join("..data_tmp").exists());
        assert_eq!(
            fs::read_to_string(dir.join("myconfig.txt")).unwrap(),
            "I am full."
        );
        assert_eq!(fs::read_to_string(dir.join("extra")).unwrap(), "x");
        assert_eq!(names(dir).len(), 4);

        // A mode change alone is an update too.
        next.insert("extra".into(), file("x", 0o400));
        assert!(write_atomic(dir, &next).unwrap());
    }

    #[test]
    fn rejects_escaping_paths() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "..data", "a/../../b", ""] {
            let mut payload = Payload::new();
            payload.insert(bad.into(), file("x", 0o644));
            assert!(write_atomic(tmp.path(), &payload).is_err(), "{bad}");
        }
    }

    #[test]
    fn items_pick_keys_and_missing_ones_fail() {
        let cm = ConfigMap {
            data: Some(
                [
                    ("a".to_owned(), "1".to_owned()),
                    ("b".to_owned(), "2".to_owned()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let items = [KeyToPath {
            key: "a".into(),
            path: "dir/a.txt".into(),
            mode: Some(0o400),
        }];
        let mut out = Payload::new();
        let source = Keyed::config_map("cm", Some(&items), None);
        let keys = Some(config_map_keys(cm.clone()));
        source.files(keys, 0o644, &mut out).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["dir/a.txt"]);
        assert_eq!(out["dir/a.txt"].mode, 0o400);
        let missing = [KeyToPath {
            key: "zz".into(),
            path: "zz".into(),
            mode: None,
        }];
        let source = Keyed::config_map("cm", Some(&missing), None);
        let err = source.files(Some(config_map_keys(cm)), 0o644, &mut out);
        assert_eq!(
            err.unwrap_err(),
            "configmap references non-existent config key: zz"
        );
        let err = Keyed::config_map("cm", None, None).files(None, 0o644, &mut out);
        assert_eq!(err.unwrap_err(), "configmap \"cm\" not found");
        let optional = Keyed::config_map("cm", None, Some(true));
        assert!(optional.files(None, 0o644, &mut out).is_ok());
        let secret = Keyed::secret("s", Some(&missing), None);
        let err = secret.files(None, 0o644, &mut out);
        assert_eq!(err.unwrap_err(), "secret \"s\" not found");
        let err = secret.files(Some(BTreeMap::new()), 0o644, &mut out);
        assert_eq!(err.unwrap_err(), "references non-existent secret key: zz");
        let e = MountError {
            volume: "config".into(),
            message: "configmap \"cm\" not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "MountVolume.SetUp failed for volume \"config\" : configmap \"cm\" not found"
        );
    }
}
