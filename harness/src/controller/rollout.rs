//! The arithmetic of a rollout, kept apart from any object so that it can be checked by tables:
//! how `maxSurge`/`maxUnavailable` resolve against a replica count (upstream
//! `deploymentutil.ResolveFenceposts`), how far the new ReplicaSet may grow
//! (`NewRSNewReplicas`), how far old ones may shrink (`reconcileOldReplicaSets`) and how a scaled
//! Deployment shares its new size among its ReplicaSets (`GetProportion`).
//!
//! Percentages resolve like `intstr.GetScaledValueFromIntOrPercent`: maxSurge rounds up,
//! maxUnavailable rounds down, and when both come out 0 maxUnavailable becomes 1 (validation
//! forbids both being 0 explicitly, but rounding can get there).

use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The default of both `maxSurge` and `maxUnavailable`.
pub const DEFAULT_FENCEPOST: &str = "25%";

/// How a Deployment replaces its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Scale every old ReplicaSet to 0, wait for their pods to go, then scale up the new one.
    Recreate,
    /// Replace pods a few at a time, within the surge and unavailability budgets.
    RollingUpdate {
        max_surge: IntOrString,
        max_unavailable: IntOrString,
    },
}

/// The resolved budgets of a Deployment, as absolute pod counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fenceposts {
    /// How many pods may exist above `replicas` (0 for Recreate).
    pub max_surge: i32,
    /// How many of `replicas` may be unavailable (0 for Recreate or 0 replicas; never above
    /// `replicas`).
    pub max_unavailable: i32,
}

/// The strategy of a Deployment spec, with the API defaults filled in (RollingUpdate, 25%/25%).
pub fn strategy(spec: &DeploymentSpec) -> Strategy {
    let strategy = spec.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Strategy::Recreate;
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let default = || IntOrString::String(DEFAULT_FENCEPOST.to_owned());
    Strategy::RollingUpdate {
        max_surge: rolling
            .and_then(|r| r.max_surge.clone())
            .unwrap_or_else(default),
        max_unavailable: rolling
            .and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(default),
    }
}

/// `spec.replicas` with its default of 1.
pub fn desired_replicas(spec: &DeploymentSpec) -> i32 {
    spec.replicas.unwrap_or(1)
}

/// An int, or a percentage of `total` rounded up or down (`GetScaledValueFromIntOrPercent`).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(text) => {
            let Some(number) = text.strip_suffix('%') else {
                return Err(format!(
                    "invalid value {text:?}: a string must be a percentage"
                ));
            };
            let percent: i64 = number
                .parse()
                .map_err(|_| format!("invalid value {text:?}: not a number followed by %"))?;
            let product = percent * i64::from(total);
            let value = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).map_err(|_| format!("invalid value {text:?}: out of range"))
        }
    }
}

/// `(maxSurge, maxUnavailable)` as counts for `desired` replicas (`ResolveFenceposts`).
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> Result<(i32, i32), String> {
    let surge = scaled_value(max_surge, desired, true).map_err(|e| format!("maxSurge: {e}"))?;
    let mut unavailable = scaled_value(max_unavailable, desired, false)
        .map_err(|e| format!("maxUnavailable: {e}"))?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// The budgets of a Deployment spec (`MaxSurge` and `MaxUnavailable` of deploymentutil).
pub fn fenceposts(spec: &DeploymentSpec) -> Result<Fenceposts, String> {
    let replicas = desired_replicas(spec);
    match strategy(spec) {
        Strategy::Recreate => Ok(Fenceposts::default()),
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let (surge, unavailable) = resolve_fenceposts(&max_surge, &max_unavailable, replicas)?;
            let unavailable = if replicas == 0 {
                0
            } else {
                unavailable.min(replicas)
            };
            Ok(Fenceposts {
                max_surge: surge,
                max_unavailable: unavailable,
            })
        }
    }
}

/// The size the new ReplicaSet may grow to in a rolling update: up to `replicas + maxSurge` pods
/// in all, never above `replicas` for the new one (`NewRSNewReplicas`).
pub fn new_rs_new_replicas(
    replicas: i32,
    max_surge: i32,
    current_total: i32,
    new_rs_replicas: i32,
) -> i32 {
    let max_total = replicas + max_surge;
    if current_total >= max_total {
        return new_rs_replicas;
    }
    let scale_up = (max_total - current_total).min(replicas - new_rs_replicas);
    new_rs_replicas + scale_up
}

/// How many old pods may go now: `allPods - (replicas - maxUnavailable) - (newRS.spec.replicas -
/// newRS.availableReplicas)`; 0 or less means none (`reconcileOldReplicaSets`).
pub fn max_scaled_down(
    all_pods: i32,
    replicas: i32,
    max_unavailable: i32,
    new_rs_replicas: i32,
    new_rs_available: i32,
) -> i32 {
    let min_available = replicas - max_unavailable;
    let new_rs_unavailable = new_rs_replicas - new_rs_available;
    all_pods - min_available - new_rs_unavailable
}

/// How many available pods may be removed while keeping `replicas - maxUnavailable` available
/// (`scaleDownOldReplicaSetsForRollingUpdate`); 0 when none.
pub fn available_scale_down(available: i32, replicas: i32, max_unavailable: i32) -> i32 {
    (available - (replicas - max_unavailable)).max(0)
}

/// How many replicas one ReplicaSet gains (or loses, when negative) when a Deployment is resized
/// mid-rollout (`GetProportion` with `getReplicaSetFraction`).
///
/// `annotated_max` is the ReplicaSet's `max-replicas` annotation (the Deployment's size plus surge
/// when the ReplicaSet was last scaled); without it the Deployment's `status.replicas` stands in.
pub struct ProportionInput {
    pub rs_replicas: i32,
    pub annotated_max: Option<i32>,
    pub status_replicas: i32,
    pub replicas: i32,
    pub max_surge: i32,
    pub to_add: i32,
    pub added: i32,
}

/// See [`ProportionInput`].
pub fn proportion(input: &ProportionInput) -> i32 {
    let ProportionInput {
        rs_replicas,
        annotated_max,
        status_replicas,
        replicas,
        max_surge,
        to_add,
        added,
    } = *input;
    if rs_replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas == 0 {
        -rs_replicas
    } else {
        let deployment_replicas = replicas + max_surge;
        let annotated = annotated_max.unwrap_or(status_replicas);
        if annotated <= 0 {
            0
        } else {
            let size =
                f64::from(rs_replicas) * f64::from(deployment_replicas) / f64::from(annotated);
            round_half_away(size) - rs_replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// `integer.RoundToInt32`: halves round away from zero.
fn round_half_away(value: f64) -> i32 {
    // Replica counts are far inside i32; the cast cannot saturate in practice.
    value.round() as i32
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};

    use super::*;

    fn v(text: &str) -> IntOrString {
        match text.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(text.to_owned()),
        }
    }

    /// (replicas, maxSurge, maxUnavailable) -> (surge, unavailable), through the whole spec path.
    #[test]
    fn fencepost_table() {
        let cases: &[(i32, &str, &str, i32, i32)] = &[
            // The seeds' examples.
            (3, "25%", "25%", 1, 0),
            (10, "25%", "25%", 3, 2),
            (1, "25%", "25%", 1, 0),
            // Percentages on odd and small counts.
            (2, "25%", "25%", 1, 0),
            (4, "25%", "25%", 1, 1),
            (5, "25%", "25%", 2, 1),
            (6, "25%", "25%", 2, 1),
            (7, "25%", "25%", 2, 1),
            (8, "25%", "25%", 2, 2),
            (9, "25%", "25%", 3, 2),
            (11, "25%", "25%", 3, 2),
            (12, "25%", "25%", 3, 3),
            (13, "25%", "25%", 4, 3),
            (100, "25%", "25%", 25, 25),
            (3, "50%", "50%", 2, 1),
            (5, "50%", "50%", 3, 2),
            (7, "33%", "33%", 3, 2),
            (3, "33%", "33%", 1, 0),
            (3, "34%", "34%", 2, 1),
            (10, "1%", "1%", 1, 0),
            (99, "1%", "1%", 1, 0),
            (101, "1%", "1%", 2, 1),
            // maxSurge 100%: the pod count may double.
            (10, "100%", "0", 10, 0),
            (3, "100%", "25%", 3, 0),
            (1, "100%", "0%", 1, 0),
            (10, "100%", "100%", 10, 10),
            // maxSurge 0, maxUnavailable 1 (replace in place).
            (3, "0", "1", 0, 1),
            (1, "0", "1", 0, 1),
            (10, "0", "1", 0, 1),
            (1, "0%", "25%", 0, 1),
            (3, "0%", "25%", 0, 1),
            (4, "0%", "25%", 0, 1),
            (10, "0%", "25%", 0, 2),
            // Both round to 0: maxUnavailable becomes 1.
            (1, "0%", "1%", 0, 1),
            (3, "0%", "10%", 0, 1),
            // Absolute numbers.
            (3, "1", "0", 1, 0),
            (3, "2", "3", 2, 3),
            (5, "10", "2", 10, 2),
            // maxUnavailable is capped at replicas.
            (3, "1", "5", 1, 3),
            (2, "0", "200%", 0, 2),
            // Zero replicas: nothing may be unavailable.
            (0, "25%", "25%", 0, 0),
            (0, "1", "1", 1, 0),
        ];
        for &(replicas, surge, unavailable, want_surge, want_unavailable) in cases {
            let spec = DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(v(surge)),
                        max_unavailable: Some(v(unavailable)),
                    }),
                }),
                ..Default::default()
            };
            let got = fenceposts(&spec).unwrap();
            assert_eq!(
                (got.max_surge, got.max_unavailable),
                (want_surge, want_unavailable),
                "replicas {replicas}, maxSurge {surge}, maxUnavailable {unavailable}"
            );
        }
    }

    #[test]
    fn defaults_and_recreate() {
        let spec = DeploymentSpec {
            replicas: Some(10),
            ..Default::default()
        };
        assert_eq!(
            fenceposts(&spec).unwrap(),
            Fenceposts {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        let recreate = DeploymentSpec {
            replicas: Some(10),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            ..Default::default()
        };
        assert_eq!(strategy(&recreate), Strategy::Recreate);
        assert_eq!(fenceposts(&recreate).unwrap(), Fenceposts::default());
        assert_eq!(desired_replicas(&DeploymentSpec::default()), 1);
    }

    #[test]
    fn bad_values_are_errors() {
        for text in ["abc", "25", "x%", "%"] {
            let value = IntOrString::String(text.into());
            assert!(scaled_value(&value, 10, true).is_err(), "{text:?}");
        }
        let err = resolve_fenceposts(&v("1"), &IntOrString::String("2".into()), 3).unwrap_err();
        assert!(err.starts_with("maxUnavailable"), "{err}");
    }

    #[test]
    fn scaled_values_round_as_upstream() {
        let cases: &[(&str, i32, bool, i32)] = &[
            ("25%", 3, true, 1),
            ("25%", 3, false, 0),
            ("50%", 5, true, 3),
            ("50%", 5, false, 2),
            ("100%", 7, true, 7),
            ("0%", 7, true, 0),
            ("10%", 10, true, 1),
            ("10%", 10, false, 1),
            ("10%", 11, true, 2),
            ("10%", 11, false, 1),
            ("7", 100, true, 7),
        ];
        for &(value, total, up, want) in cases {
            assert_eq!(
                scaled_value(&v(value), total, up).unwrap(),
                want,
                "{value} of {total}"
            );
        }
    }

    /// (replicas, surge, sum of all RS spec.replicas, new RS spec.replicas) -> new size.
    #[test]
    fn new_replica_set_scale_up_table() {
        let cases: &[(i32, i32, i32, i32, i32)] = &[
            // 3 replicas, surge 1: one new pod at a time.
            (3, 1, 3, 0, 1),
            (3, 1, 4, 1, 1),
            (3, 1, 3, 1, 2),
            (3, 1, 3, 2, 3),
            (3, 1, 3, 3, 3),
            // 10 replicas, surge 3.
            (10, 3, 10, 0, 3),
            (10, 3, 13, 3, 3),
            (10, 3, 11, 3, 5),
            (10, 3, 8, 8, 10),
            // surge 100%: the whole new set at once.
            (10, 10, 10, 0, 10),
            (3, 3, 3, 0, 3),
            // No surge: wait until old pods are gone.
            (3, 0, 3, 0, 0),
            (3, 0, 2, 0, 1),
            (1, 0, 0, 0, 1),
            // Already above the budget (e.g. after a scale-down): unchanged.
            (3, 1, 6, 1, 1),
            // One replica, surge 1.
            (1, 1, 1, 0, 1),
            (1, 1, 2, 1, 1),
        ];
        for &(replicas, surge, total, new, want) in cases {
            assert_eq!(
                new_rs_new_replicas(replicas, surge, total, new),
                want,
                "replicas {replicas} surge {surge} total {total} new {new}"
            );
        }
    }

    /// (all pods, replicas, maxUnavailable, new spec, new available) -> maxScaledDown.
    #[test]
    fn old_replica_set_scale_down_table() {
        let cases: &[(i32, i32, i32, i32, i32, i32)] = &[
            // 3 replicas, 0 unavailable: an old pod may go once a new one is available.
            (4, 3, 0, 1, 0, 0),
            (4, 3, 0, 1, 1, 1),
            (4, 3, 0, 2, 1, 0),
            // 10 replicas, 2 unavailable, surge 3.
            (13, 10, 2, 3, 0, 2),
            (13, 10, 2, 3, 3, 5),
            (11, 10, 2, 5, 0, -2),
            // maxSurge 0, maxUnavailable 1: scale down first.
            (3, 3, 1, 0, 0, 1),
            (2, 3, 1, 0, 0, 0),
            (3, 3, 1, 1, 0, 0),
            (1, 1, 1, 0, 0, 1),
        ];
        for &(all, replicas, unavailable, new, available, want) in cases {
            assert_eq!(
                max_scaled_down(all, replicas, unavailable, new, available),
                want,
                "all {all} replicas {replicas} unavailable {unavailable} new {new}/{available}"
            );
        }
        assert_eq!(available_scale_down(4, 3, 0), 1);
        assert_eq!(available_scale_down(2, 3, 0), 0);
        assert_eq!(available_scale_down(12, 10, 2), 4);
    }

    #[test]
    fn proportions() {
        // Deployment 10 (+3 surge) scaled to 20 (+5): old RS of 8 and new RS of 5 share +12.
        let base = ProportionInput {
            rs_replicas: 8,
            annotated_max: Some(13),
            status_replicas: 13,
            replicas: 20,
            max_surge: 5,
            to_add: 12,
            added: 0,
        };
        assert_eq!(proportion(&base), 7); // round(8 * 25 / 13) - 8 = 15 - 8
        let second = ProportionInput {
            rs_replicas: 5,
            added: 7,
            ..base
        };
        assert_eq!(proportion(&second), 5); // min(round(5 * 25 / 13) - 5 = 5, 12 - 7)
        // Scaling to zero takes everything.
        let to_zero = ProportionInput {
            replicas: 0,
            max_surge: 0,
            to_add: -13,
            ..base
        };
        assert_eq!(proportion(&to_zero), -8);
        // Nothing to share, or nothing left.
        assert_eq!(proportion(&ProportionInput { to_add: 0, ..base }), 0);
        assert_eq!(proportion(&ProportionInput { added: 12, ..base }), 0);
        assert_eq!(
            proportion(&ProportionInput {
                rs_replicas: 0,
                ..base
            }),
            0
        );
        // Without the annotation, status.replicas stands in.
        let unannotated = ProportionInput {
            annotated_max: None,
            status_replicas: 8,
            ..base
        };
        assert_eq!(proportion(&unannotated), 12); // min(25 - 8, 12)
    }
}
