//! [`MountPlan`]: how a process pod sees its volumes at their `mountPath`s without touching the
//! host's file system.
//!
//! The child process gets a private mount namespace. A mountPath that exists on the host (say
//! `/tmp/cache`) is bind-mounted over. One that does not (`/etc/hostbot`) needs a directory to
//! mount on, and creating it on the host is not acceptable: instead the nearest existing
//! ancestor (`/etc`) gets an overlay whose lower layer is the host's directory and whose upper
//! layer is a scratch directory of the container, the missing directories are made inside the
//! overlay, and the volume is bind-mounted there. The host's `/etc` never changes.
//!
//! The plan is computed in the parent (it may allocate and look at the file system); the child
//! only replays its steps with async-signal-safe calls. A mountPath whose nearest existing
//! ancestor is `/` cannot be overlaid (the process's root directory cannot be covered without a
//! `pivot_root`); it is skipped with a warning, and the process finds the volume through
//! `CONFIG_DIR`.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// One volume mount of a container: a host path shown at `target` inside the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    /// The source is a file (a `subPath` of a ConfigMap volume), not a directory.
    pub file: bool,
}

/// One action in the child's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Overlay `target` with itself as the lower layer.
    Overlay {
        target: PathBuf,
        upper: PathBuf,
        work: PathBuf,
    },
    Mkdir(PathBuf),
    /// Create an empty file to bind a file onto.
    Touch(PathBuf),
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
}

/// The steps for a container's mounts, and the mounts that cannot be made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountPlan {
    pub steps: Vec<Step>,
    /// (mountPath, why it was skipped).
    pub skipped: Vec<(PathBuf, String)>,
}

impl MountPlan {
    /// Whether there is anything to mount.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The scratch directories the overlays need; the parent creates them before the spawn.
    pub fn scratch_dirs(&self) -> Vec<&Path> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Overlay { upper, work, .. } => Some([upper.as_path(), work.as_path()]),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// Plans `mounts`; `exists` says whether a host path exists, `scratch` is the container
/// instance's own directory for overlay layers.
pub fn plan(mounts: &[MountSpec], scratch: &Path, exists: impl Fn(&Path) -> bool) -> MountPlan {
    let mut ordered: Vec<&MountSpec> = mounts.iter().collect();
    ordered.sort_by_key(|m| m.target.components().count());
    let mut plan = MountPlan::default();
    let mut overlays: Vec<PathBuf> = Vec::new();
    let mut created: BTreeSet<PathBuf> = BTreeSet::new();
    let mut makes = Vec::new();
    let mut binds = Vec::new();
    for mount in ordered {
        let target = &mount.target;
        let clean = target.is_absolute()
            && target
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean || target == Path::new("/") {
            plan.skipped.push((
                target.clone(),
                "mountPath must be an absolute path below /".into(),
            ));
            continue;
        }
        let present = |p: &Path| created.contains(p) || exists(p);
        if !present(target) {
            let mut ancestor = target.parent().unwrap_or(Path::new("/"));
            while !present(ancestor) {
                ancestor = ancestor.parent().unwrap_or(Path::new("/"));
            }
            if ancestor == Path::new("/") {
                plan.skipped.push((
                    target.clone(),
                    format!(
                        "{} does not exist on this machine and a directory cannot be added under /",
                        target.display()
                    ),
                ));
                continue;
            }
            if !overlays.iter().any(|o| ancestor.starts_with(o)) {
                overlays.retain(|o| !o.starts_with(ancestor));
                overlays.push(ancestor.to_path_buf());
            }
            let missing: Vec<PathBuf> = target
                .ancestors()
                .take_while(|p| *p != ancestor)
                .map(Path::to_path_buf)
                .collect();
            for path in missing.into_iter().rev() {
                let step = if &path == target && mount.file {
                    Step::Touch(path.clone())
                } else {
                    Step::Mkdir(path.clone())
                };
                makes.push(step);
                created.insert(path);
            }
        }
        binds.push(Step::Bind {
            source: mount.source.clone(),
            target: target.clone(),
            read_only: mount.read_only,
        });
    }
    overlays.sort_by_key(|o| o.components().count());
    for (i, target) in overlays.into_iter().enumerate() {
        let layer = scratch.join(format!("overlay-{i}"));
        plan.steps.push(Step::Overlay {
            target,
            upper: layer.join("upper"),
            work: layer.join("work"),
        });
    }
    plan.steps.extend(makes);
    plan.steps.extend(binds);
    plan
}

/// Removes a directory tree the harness created, including overlay work directories, which
/// the kernel leaves with mode 000 (only root could otherwise list them).
pub fn remove_tree(path: &Path) {
    fn open_up(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.is_dir() {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                open_up(&entry.path());
            }
        }
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => {
            open_up(path);
            if let Err(e) = std::fs::remove_dir_all(path) {
                tracing::warn!(dir = %path.display(), "cannot remove: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(target: &str, file: bool) -> MountSpec {
        MountSpec {
            source: PathBuf::from("/state/vol"),
            target: PathBuf::from(target),
            read_only: true,
            file,
        }
    }

    fn host(paths: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p: &Path| p == Path::new("/") || paths.iter().any(|h| Path::new(h) == p)
    }

    #[test]
    fn existing_targets_are_bound_directly() {
        let plan = plan(&[mount("/tmp", false)], Path::new("/s"), host(&["/tmp"]));
        assert_eq!(
            plan.steps,
            vec![Step::Bind {
                source: "/state/vol".into(),
                target: "/tmp".into(),
                read_only: true
            }]
        );
    }

    #[test]
    fn missing_targets_get_an_overlay_on_the_nearest_ancestor() {
        let mounts = [
            mount("/etc/hostbot", false),
            mount("/etc/app/conf/x.ini", true),
            mount("/etc/ssl/extra", false),
        ];
        let plan = plan(&mounts, Path::new("/s"), host(&["/etc", "/etc/ssl"]));
        assert!(plan.skipped.is_empty());
        assert_eq!(
            plan.steps[0],
            Step::Overlay {
                target: "/etc".into(),
                upper: "/s/overlay-0/upper".into(),
                work: "/s/overlay-0/work".into()
            }
        );
        let overlays = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Overlay { .. }))
            .count();
        assert_eq!(overlays, 1, "{:?}", plan.steps);
        assert!(plan.steps.contains(&Step::Mkdir("/etc/hostbot".into())));
        assert!(plan.steps.contains(&Step::Mkdir("/etc/app".into())));
        assert!(plan.steps.contains(&Step::Mkdir("/etc/app/conf".into())));
        assert!(
            plan.steps
                .contains(&Step::Touch("/etc/app/conf/x.ini".into()))
        );
        assert_eq!(plan.scratch_dirs().len(), 2);
        assert!(matches!(plan.steps.last(), Some(Step::Bind { .. })));
    }

    #[test]
    fn a_deeper_overlay_gives_way_to_a_shallower_one() {
        let mounts = [mount("/etc/ssl/extra", false), mount("/etc/new", false)];
        let plan = plan(&mounts, Path::new("/s"), host(&["/etc", "/etc/ssl"]));
        let overlays: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Overlay { .. }))
            .collect();
        assert_eq!(overlays.len(), 1);
        assert!(matches!(overlays[0], Step::Overlay { target, .. } if target == Path::new("/etc")));
    }

    #[test]
    fn top_level_targets_and_bad_paths_are_skipped() {
        let mounts = [
            mount("/config", false),
            mount("relative", false),
            mount("/a/../b", false),
        ];
        let plan = plan(&mounts, Path::new("/s"), host(&[]));
        assert!(plan.is_empty());
        assert_eq!(plan.skipped.len(), 3);
        let config = plan
            .skipped
            .iter()
            .find(|(p, _)| p == Path::new("/config"))
            .unwrap();
        assert!(
            config.1.contains("cannot be added under /"),
            "{:?}",
            plan.skipped
        );
    }
}
