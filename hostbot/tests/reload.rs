//! Config reload: the kubelet's atomic `..data` swap, imitated step by step, plain edits, and
//! broken or missing directories.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hostbot::Config;
use support::{Instance, PATIENCE, config, get, wait_for};

/// A ConfigMap volume written the way kubelet's `AtomicWriter` writes it: payload into a new
/// timestamped directory, `..data_tmp -> that directory`, rename over `..data`, user-visible
/// `key -> ..data/key` symlinks for new keys, removal of keys that went away, removal of the old
/// timestamped directory.
struct KubeletVolume {
    dir: tempfile::TempDir,
    current: Option<String>,
    generation: u32,
}

impl KubeletVolume {
    fn new() -> Self {
        KubeletVolume {
            dir: tempfile::tempdir().unwrap(),
            current: None,
            generation: 0,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn write(&mut self, payload: &[(&str, &str)]) {
        let root = self.dir.path();
        self.generation += 1;
        let ts_name = format!("..2026_11_22_00_00_00.{:09}", self.generation);
        let ts_dir = root.join(&ts_name);
        fs::create_dir(&ts_dir).unwrap();
        for (key, value) in payload {
            fs::write(ts_dir.join(key), value).unwrap();
        }
        symlink(&ts_name, root.join("..data_tmp")).unwrap();
        fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        for (key, _) in payload {
            let visible = root.join(key);
            if fs::symlink_metadata(&visible).is_err() {
                symlink(Path::new("..data").join(key), visible).unwrap();
            }
        }
        for entry in fs::read_dir(root).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.starts_with("..") && !payload.iter().any(|(key, _)| *key == name) {
                fs::remove_file(root.join(&name)).unwrap();
            }
        }
        if let Some(old) = self.current.replace(ts_name) {
            fs::remove_dir_all(root.join(old)).unwrap();
        }
    }
}

fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn config_of(hostbot: &Instance) -> BTreeMap<String, String> {
    let (status, body) = get(&hostbot.url("/config")).await.unwrap();
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

async fn wait_for_config(hostbot: &Instance, want: &BTreeMap<String, String>) {
    wait_for(&format!("config {want:?}"), PATIENCE, || async {
        (config_of(hostbot).await == *want).then_some(())
    })
    .await;
}

async fn hash_of(hostbot: &Instance) -> Option<String> {
    let (_, body) = get(&hostbot.url("/")).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json.get("config")
        .map(|hash| hash.as_str().unwrap().to_owned())
}

async fn reload_errors(hostbot: &Instance) -> u64 {
    let (_, metrics) = get(&hostbot.url("/metrics")).await.unwrap();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("hostbot_config_reloads_total{result=\"error\"}"))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Events, not polling, must drive these reloads: the poll interval is far beyond the test.
fn watching(dir: PathBuf) -> Config {
    Config {
        config_dir: Some(dir),
        config_poll_interval: Duration::from_secs(3600),
        ..config()
    }
}

#[tokio::test]
async fn follows_kubelet_atomic_swaps() {
    let mut volume = KubeletVolume::new();
    volume.write(&[("greeting", "hello")]);
    let hostbot = Instance::ready(watching(volume.path())).await;
    assert_eq!(config_of(&hostbot).await, files(&[("greeting", "hello")]));
    let first = hash_of(&hostbot).await.expect("a config hash");

    volume.write(&[("greeting", "hi"), ("color", "blue")]);
    wait_for_config(&hostbot, &files(&[("greeting", "hi"), ("color", "blue")])).await;
    let second = hash_of(&hostbot).await.unwrap();
    assert_ne!(first, second);

    // A key removed in the next swap disappears; the hash is a function of the content.
    volume.write(&[("greeting", "hello")]);
    wait_for_config(&hostbot, &files(&[("greeting", "hello")])).await;
    assert_eq!(hash_of(&hostbot).await.unwrap(), first);
}

#[tokio::test]
async fn follows_plain_edits() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("greeting"), "hello").unwrap();
    let hostbot = Instance::ready(watching(dir.path().to_owned())).await;
    assert_eq!(config_of(&hostbot).await, files(&[("greeting", "hello")]));

    fs::write(dir.path().join("greeting"), "edited").unwrap();
    wait_for_config(&hostbot, &files(&[("greeting", "edited")])).await;
    fs::write(dir.path().join("new"), "file").unwrap();
    wait_for_config(&hostbot, &files(&[("greeting", "edited"), ("new", "file")])).await;
    fs::remove_file(dir.path().join("new")).unwrap();
    wait_for_config(&hostbot, &files(&[("greeting", "edited")])).await;
}

#[tokio::test]
async fn broken_config_keeps_the_last_good_one() {
    let mut volume = KubeletVolume::new();
    volume.write(&[("greeting", "hello")]);
    let hostbot = Instance::ready(watching(volume.path())).await;
    assert_eq!(reload_errors(&hostbot).await, 0);

    // A half-done swap: a key symlink pointing at nothing.
    symlink("..data/missing", volume.path().join("broken")).unwrap();
    wait_for("a failed reload", PATIENCE, || async {
        (reload_errors(&hostbot).await > 0).then_some(())
    })
    .await;
    assert_eq!(config_of(&hostbot).await, files(&[("greeting", "hello")]));
    assert!(hash_of(&hostbot).await.is_some());

    // Repaired: the next change is picked up again.
    fs::remove_file(volume.path().join("broken")).unwrap();
    volume.write(&[("greeting", "fixed")]);
    wait_for_config(&hostbot, &files(&[("greeting", "fixed")])).await;
}

#[tokio::test]
async fn missing_directory_is_no_config_until_it_appears() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("hostbot");
    let hostbot = Instance::ready(Config {
        config_dir: Some(dir.clone()),
        config_poll_interval: Duration::from_millis(50),
        ..config()
    })
    .await;
    assert_eq!(config_of(&hostbot).await, BTreeMap::new());
    assert_eq!(
        hash_of(&hostbot).await,
        None,
        "no config key without config"
    );

    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("greeting"), "late").unwrap();
    wait_for_config(&hostbot, &files(&[("greeting", "late")])).await;
    // And edits keep flowing once it exists.
    fs::write(dir.join("greeting"), "later").unwrap();
    wait_for_config(&hostbot, &files(&[("greeting", "later")])).await;
}
