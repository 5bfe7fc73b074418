//! meta/v1 messages shared by every object: `ObjectMeta` (with owner references and managed
//! fields), label selectors and `Condition`.

use super::{BOOL, FIELDS_V1, INT64, STRING, TIME, messages, msg};

messages! {
    OBJECT_META = meta "ObjectMeta" {
        1 "name" one STRING,
        2 "generateName" one STRING,
        3 "namespace" one STRING,
        4 "selfLink" one STRING,
        5 "uid" one STRING,
        6 "resourceVersion" one STRING,
        7 "generation" one INT64,
        8 "creationTimestamp" one TIME,
        9 "deletionTimestamp" one TIME,
        10 "deletionGracePeriodSeconds" kept INT64,
        11 "labels" map STRING,
        12 "annotations" map STRING,
        13 "ownerReferences" list msg(&OWNER_REFERENCE),
        14 "finalizers" list STRING,
        17 "managedFields" list msg(&MANAGED_FIELDS_ENTRY),
    }
    OWNER_REFERENCE = meta "OwnerReference" {
        1 "kind" kept STRING,
        3 "name" kept STRING,
        4 "uid" kept STRING,
        5 "apiVersion" kept STRING,
        6 "controller" kept BOOL,
        7 "blockOwnerDeletion" kept BOOL,
    }
    MANAGED_FIELDS_ENTRY = meta "ManagedFieldsEntry" {
        1 "manager" one STRING,
        2 "operation" one STRING,
        3 "apiVersion" one STRING,
        4 "time" one TIME,
        6 "fieldsType" one STRING,
        7 "fieldsV1" one FIELDS_V1,
        8 "subresource" one STRING,
    }
    LABEL_SELECTOR = meta "LabelSelector" {
        1 "matchLabels" map STRING,
        2 "matchExpressions" list msg(&LABEL_SELECTOR_REQUIREMENT),
    }
    LABEL_SELECTOR_REQUIREMENT = meta "LabelSelectorRequirement" {
        1 "key" kept STRING,
        2 "operator" kept STRING,
        3 "values" list STRING,
    }
    CONDITION = meta "Condition" {
        1 "type" kept STRING,
        2 "status" kept STRING,
        3 "observedGeneration" one INT64,
        4 "lastTransitionTime" one TIME,
        5 "reason" kept STRING,
        6 "message" kept STRING,
    }
}
