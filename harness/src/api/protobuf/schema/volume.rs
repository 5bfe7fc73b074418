//! core/v1 `Volume` and its sources: hostPath, emptyDir, secret, configMap, downwardAPI,
//! projected, persistentVolumeClaim, ephemeral, csi and image. The legacy in-tree plugins
//! (numbers 3-5, 7-9, 11-15, 17, 18, 20-25, 27) are left out, so a body using one is refused
//! with the field's number.

use super::container::{OBJECT_FIELD_SELECTOR, RESOURCE_FIELD_SELECTOR};
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::objects::LOCAL_OBJECT_REFERENCE;
use super::{BOOL, INT32, INT64, QUANTITY, STRING, messages, msg};

messages! {
    VOLUME = core "Volume" {
        1 "name" kept STRING,
        2 "" inline msg(&VOLUME_SOURCE),
    }
    VOLUME_SOURCE = core "VolumeSource" {
        1 "hostPath" one msg(&HOST_PATH_VOLUME_SOURCE),
        2 "emptyDir" one msg(&EMPTY_DIR_VOLUME_SOURCE),
        6 "secret" one msg(&SECRET_VOLUME_SOURCE),
        10 "persistentVolumeClaim" one msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE),
        16 "downwardAPI" one msg(&DOWNWARD_API_VOLUME_SOURCE),
        19 "configMap" one msg(&CONFIG_MAP_VOLUME_SOURCE),
        26 "projected" one msg(&PROJECTED_VOLUME_SOURCE),
        28 "csi" one msg(&CSI_VOLUME_SOURCE),
        29 "ephemeral" one msg(&EPHEMERAL_VOLUME_SOURCE),
        30 "image" one msg(&IMAGE_VOLUME_SOURCE),
    }
    HOST_PATH_VOLUME_SOURCE = core "HostPathVolumeSource" {
        1 "path" kept STRING,
        2 "type" kept STRING,
    }
    EMPTY_DIR_VOLUME_SOURCE = core "EmptyDirVolumeSource" {
        1 "medium" one STRING,
        2 "sizeLimit" one QUANTITY,
    }
    SECRET_VOLUME_SOURCE = core "SecretVolumeSource" {
        1 "secretName" one STRING,
        2 "items" list msg(&KEY_TO_PATH),
        3 "defaultMode" kept INT32,
        4 "optional" kept BOOL,
    }
    CONFIG_MAP_VOLUME_SOURCE = core "ConfigMapVolumeSource" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "items" list msg(&KEY_TO_PATH),
        3 "defaultMode" kept INT32,
        4 "optional" kept BOOL,
    }
    KEY_TO_PATH = core "KeyToPath" {
        1 "key" kept STRING,
        2 "path" kept STRING,
        3 "mode" kept INT32,
    }
    DOWNWARD_API_VOLUME_SOURCE = core "DownwardAPIVolumeSource" {
        1 "items" list msg(&DOWNWARD_API_VOLUME_FILE),
        2 "defaultMode" kept INT32,
    }
    DOWNWARD_API_VOLUME_FILE = core "DownwardAPIVolumeFile" {
        1 "path" kept STRING,
        2 "fieldRef" one msg(&OBJECT_FIELD_SELECTOR),
        3 "resourceFieldRef" one msg(&RESOURCE_FIELD_SELECTOR),
        4 "mode" kept INT32,
    }
    PROJECTED_VOLUME_SOURCE = core "ProjectedVolumeSource" {
        1 "sources" list msg(&VOLUME_PROJECTION),
        2 "defaultMode" kept INT32,
    }
    VOLUME_PROJECTION = core "VolumeProjection" {
        1 "secret" one msg(&SECRET_PROJECTION),
        2 "downwardAPI" one msg(&DOWNWARD_API_PROJECTION),
        3 "configMap" one msg(&CONFIG_MAP_PROJECTION),
        4 "serviceAccountToken" one msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION),
        5 "clusterTrustBundle" one msg(&CLUSTER_TRUST_BUNDLE_PROJECTION),
    }
    SECRET_PROJECTION = core "SecretProjection" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "items" list msg(&KEY_TO_PATH),
        4 "optional" kept BOOL,
    }
    CONFIG_MAP_PROJECTION = core "ConfigMapProjection" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "items" list msg(&KEY_TO_PATH),
        4 "optional" kept BOOL,
    }
    DOWNWARD_API_PROJECTION = core "DownwardAPIProjection" {
        1 "items" list msg(&DOWNWARD_API_VOLUME_FILE),
    }
    SERVICE_ACCOUNT_TOKEN_PROJECTION = core "ServiceAccountTokenProjection" {
        1 "audience" one STRING,
        2 "expirationSeconds" kept INT64,
        3 "path" kept STRING,
    }
    CLUSTER_TRUST_BUNDLE_PROJECTION = core "ClusterTrustBundleProjection" {
        1 "name" kept STRING,
        2 "signerName" kept STRING,
        3 "labelSelector" one msg(&LABEL_SELECTOR),
        4 "path" kept STRING,
        5 "optional" kept BOOL,
    }
    PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE = core "PersistentVolumeClaimVolumeSource" {
        1 "claimName" kept STRING,
        2 "readOnly" one BOOL,
    }
    EPHEMERAL_VOLUME_SOURCE = core "EphemeralVolumeSource" {
        1 "volumeClaimTemplate" one msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE),
    }
    PERSISTENT_VOLUME_CLAIM_TEMPLATE = core "PersistentVolumeClaimTemplate" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&PERSISTENT_VOLUME_CLAIM_SPEC),
    }
    PERSISTENT_VOLUME_CLAIM_SPEC = core "PersistentVolumeClaimSpec" {
        1 "accessModes" list STRING,
        2 "resources" one msg(&VOLUME_RESOURCE_REQUIREMENTS),
        3 "volumeName" one STRING,
        4 "selector" one msg(&LABEL_SELECTOR),
        5 "storageClassName" kept STRING,
        6 "volumeMode" kept STRING,
        7 "dataSource" one msg(&TYPED_LOCAL_OBJECT_REFERENCE),
        8 "dataSourceRef" one msg(&TYPED_OBJECT_REFERENCE),
        9 "volumeAttributesClassName" kept STRING,
    }
    VOLUME_RESOURCE_REQUIREMENTS = core "VolumeResourceRequirements" {
        1 "limits" map QUANTITY,
        2 "requests" map QUANTITY,
    }
    TYPED_LOCAL_OBJECT_REFERENCE = core "TypedLocalObjectReference" {
        1 "apiGroup" kept STRING,
        2 "kind" kept STRING,
        3 "name" kept STRING,
    }
    TYPED_OBJECT_REFERENCE = core "TypedObjectReference" {
        1 "apiGroup" kept STRING,
        2 "kind" kept STRING,
        3 "name" kept STRING,
        4 "namespace" kept STRING,
    }
    CSI_VOLUME_SOURCE = core "CSIVolumeSource" {
        1 "driver" kept STRING,
        2 "readOnly" kept BOOL,
        3 "fsType" kept STRING,
        4 "volumeAttributes" map STRING,
        5 "nodePublishSecretRef" one msg(&LOCAL_OBJECT_REFERENCE),
    }
    IMAGE_VOLUME_SOURCE = core "ImageVolumeSource" {
        1 "reference" one STRING,
        2 "pullPolicy" one STRING,
    }
}
