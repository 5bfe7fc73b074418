//! Scenarios: named lists of [`Step`]s that disrupt the cluster while load runs. The three
//! built-in ones (rolling-update, pod-deletion, configmap-reload) are written in the same step
//! language users write their own scenario files in (YAML, see `examples/scenarios/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A scenario: what to do, and what to expect of availability while doing it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Manifests applied before the load starts (paths relative to the scenario file).
    #[serde(default)]
    pub setup: Vec<PathBuf>,
    pub steps: Vec<Step>,
    /// What availability should look like; by default "no failed request" (the SLO).
    #[serde(default)]
    pub expect: Expect,
    /// Where the file was, to resolve relative paths.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The verdict's rules for one scenario.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// `true`: the scenario is a known breakage and passes only if an outage is seen.
    #[serde(default)]
    pub outage: bool,
    /// Overrides `--slo` for this scenario, e.g. `"99.5%"`.
    #[serde(default)]
    pub slo: Option<String>,
}

/// One action on the cluster.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Step {
    /// Applies a manifest file or directory (relative to the scenario file).
    Apply(PathBuf),
    /// A JSON merge patch on one object.
    Patch(PatchStep),
    /// Sets a Deployment container's image, like `kubectl set image`.
    SetImage(SetImageStep),
    /// `kubectl rollout restart deployment/NAME`.
    Restart(String),
    /// Replaces keys of a ConfigMap's data.
    UpdateConfigMap(ConfigMapStep),
    /// Deletes pods matching a selector one at a time, waiting for the replacement each time.
    DeletePods(DeletePodsStep),
    /// Deletes one object.
    Delete(ObjectRef),
    /// Kills a pod's container process, as a crash would (S17).
    Kill(KillStep),
    /// Waits for a condition.
    WaitFor(WaitStep),
    /// Waits a fixed time, e.g. `"2s"`, to let load run.
    Sleep(String),
}

/// Names one object.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchStep {
    pub kind: String,
    pub name: String,
    pub patch: serde_json::Value,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetImageStep {
    pub deployment: String,
    /// The container; the first one when absent.
    #[serde(default)]
    pub container: Option<String>,
    pub image: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigMapStep {
    pub name: String,
    pub data: std::collections::BTreeMap<String, String>,
    /// Wait until every response carries the new config (a mounted ConfigMap).
    #[serde(default)]
    pub wait_propagated: bool,
    /// A Deployment the update must restart (Reloader annotations): wait until its rollout
    /// has begun, i.e. its revision changed.
    #[serde(default)]
    pub restarts: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePodsStep {
    pub selector: String,
    /// How many pods to delete, one after another.
    #[serde(default = "one")]
    pub count: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillStep {
    pub selector: String,
    /// `TERM` (default, like the `kill` command: the process may drain) or `KILL` (a crash).
    #[serde(default = "term")]
    pub signal: String,
}

fn term() -> String {
    "TERM".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WaitStep {
    /// Wait for this Deployment's rollout to complete.
    #[serde(default)]
    pub rollout: Option<String>,
    /// Wait until this many pods matching `selector` are Ready.
    #[serde(default)]
    pub ready: Option<u32>,
    #[serde(default)]
    pub selector: Option<String>,
    /// Give up after this long (default 120s); a timeout fails the scenario.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Instead of failing on timeout, carry on (for breakages that never complete).
    #[serde(default)]
    pub allow_timeout: bool,
}

fn one() -> u32 {
    1
}

impl Scenario {
    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read scenario file: {e}", path.display()))?;
        let mut scenario: Scenario = serde_saphyr::from_str(&text)
            .map_err(|e| format!("{}: invalid scenario: {e}", path.display()))?;
        scenario.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(scenario)
    }

    /// The built-in scenario of that name, for the Deployment and ConfigMap of the shipped
    /// manifests.
    pub fn builtin(name: &str, deployment: &str, configmap: &str) -> Option<Scenario> {
        let text = match name {
            "rolling-update" => format!(
                "name: rolling-update
description: change the image tag, then rollout restart
steps:
  - set-image: {{deployment: {deployment}, image: yourname/hostbot:v2}}
  - wait-for: {{rollout: {deployment}}}
  - restart: {deployment}
  - wait-for: {{rollout: {deployment}}}
"
            ),
            "pod-deletion" => format!(
                "name: pod-deletion
description: delete pods one at a time, then kill a container process
steps:
  - delete-pods: {{selector: app={deployment}, count: 3}}
  - kill: {{selector: app={deployment}}}
  - wait-for: {{rollout: {deployment}}}
"
            ),
            "configmap-reload" => format!(
                "name: configmap-reload
description: update the mounted ConfigMap, measure propagation, then a Reloader-style restart
steps:
  - update-config-map: {{name: {configmap}, data: {{greeting: reloaded}}, wait-propagated: true}}
  - patch:
      kind: Deployment
      name: {deployment}
      patch: {{metadata: {{annotations: {{reloader.stakater.com/auto: \"true\"}}}}}}
  - update-config-map: {{name: {configmap}, data: {{greeting: restarted}}, restarts: {deployment}}}
  - wait-for: {{rollout: {deployment}}}
"
            ),
            _ => return None,
        };
        let mut scenario: Scenario =
            serde_saphyr::from_str(&text).expect("built-in scenarios parse");
        scenario.dir = PathBuf::from(".");
        Some(scenario)
    }

    /// The names of the built-in scenarios, in the order `all` runs them.
    pub const BUILTIN: &'static [&'static str] =
        &["rolling-update", "pod-deletion", "configmap-reload"];
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `90` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 500ms, 2s, 1m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be ms, s, m or h"
            ));
        }
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("invalid duration {text:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses an SLO like `100%`, `99.9%` or `0.999` into a ratio.
pub fn parse_slo(text: &str) -> Result<f64, String> {
    let ratio = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("invalid SLO {text:?}: use e.g. 100% or 99.9%"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("invalid SLO {text:?}: must be between 0% and 100%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for name in Scenario::BUILTIN {
            let s = Scenario::builtin(name, "hostbot", "hostbot-config").unwrap();
            assert_eq!(&s.name, name);
            assert!(!s.steps.is_empty());
        }
        assert!(Scenario::builtin("nope", "a", "b").is_none());
    }

    #[test]
    fn durations_and_slos() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_slo("100%").unwrap(), 1.0);
        assert!((parse_slo("99.9%").unwrap() - 0.999).abs() < 1e-9);
        assert!(parse_slo("120%").is_err());
        assert!(parse_slo("most").is_err());
    }

    #[test]
    fn unknown_step_is_an_error() {
        let text = "name: x\nsteps:\n  - explode: {}\n";
        let err = serde_saphyr::from_str::<Scenario>(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("explode"), "{err}");
    }
}
