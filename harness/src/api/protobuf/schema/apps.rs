//! apps/v1 `Deployment` and `ReplicaSet` with their specs and statuses, and the autoscaling/v1
//! `Scale` of the `scale` subresource.

use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::pod::POD_TEMPLATE_SPEC;
use super::{BOOL, INT_OR_STRING, INT32, INT64, STRING, TIME, messages, msg};

messages! {
    DEPLOYMENT = apps "Deployment" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&DEPLOYMENT_SPEC),
        3 "status" one msg(&DEPLOYMENT_STATUS),
    }
    DEPLOYMENT_SPEC = apps "DeploymentSpec" {
        1 "replicas" kept INT32,
        2 "selector" one msg(&LABEL_SELECTOR),
        3 "template" one msg(&POD_TEMPLATE_SPEC),
        4 "strategy" one msg(&DEPLOYMENT_STRATEGY),
        5 "minReadySeconds" one INT32,
        6 "revisionHistoryLimit" kept INT32,
        7 "paused" one BOOL,
        9 "progressDeadlineSeconds" kept INT32,
    }
    DEPLOYMENT_STRATEGY = apps "DeploymentStrategy" {
        1 "type" one STRING,
        2 "rollingUpdate" one msg(&ROLLING_UPDATE_DEPLOYMENT),
    }
    ROLLING_UPDATE_DEPLOYMENT = apps "RollingUpdateDeployment" {
        1 "maxUnavailable" one INT_OR_STRING,
        2 "maxSurge" one INT_OR_STRING,
    }
    DEPLOYMENT_STATUS = apps "DeploymentStatus" {
        1 "observedGeneration" one INT64,
        2 "replicas" one INT32,
        3 "updatedReplicas" one INT32,
        4 "availableReplicas" one INT32,
        5 "unavailableReplicas" one INT32,
        6 "conditions" list msg(&DEPLOYMENT_CONDITION),
        7 "readyReplicas" one INT32,
        8 "collisionCount" kept INT32,
    }
    DEPLOYMENT_CONDITION = apps "DeploymentCondition" {
        1 "type" kept STRING,
        2 "status" kept STRING,
        4 "reason" one STRING,
        5 "message" one STRING,
        6 "lastUpdateTime" one TIME,
        7 "lastTransitionTime" one TIME,
    }
    REPLICA_SET = apps "ReplicaSet" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&REPLICA_SET_SPEC),
        3 "status" one msg(&REPLICA_SET_STATUS),
    }
    REPLICA_SET_SPEC = apps "ReplicaSetSpec" {
        1 "replicas" kept INT32,
        2 "selector" one msg(&LABEL_SELECTOR),
        3 "template" one msg(&POD_TEMPLATE_SPEC),
        4 "minReadySeconds" one INT32,
    }
    REPLICA_SET_STATUS = apps "ReplicaSetStatus" {
        1 "replicas" kept INT32,
        2 "fullyLabeledReplicas" one INT32,
        3 "observedGeneration" one INT64,
        4 "readyReplicas" one INT32,
        5 "availableReplicas" one INT32,
        6 "conditions" list msg(&REPLICA_SET_CONDITION),
    }
    REPLICA_SET_CONDITION = apps "ReplicaSetCondition" {
        1 "type" kept STRING,
        2 "status" kept STRING,
        3 "lastTransitionTime" one TIME,
        4 "reason" one STRING,
        5 "message" one STRING,
    }
    SCALE = autoscaling "Scale" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&SCALE_SPEC),
        3 "status" one msg(&SCALE_STATUS),
    }
    SCALE_SPEC = autoscaling "ScaleSpec" {
        1 "replicas" one INT32,
    }
    SCALE_STATUS = autoscaling "ScaleStatus" {
        1 "replicas" kept INT32,
        2 "selector" one STRING,
    }
}
