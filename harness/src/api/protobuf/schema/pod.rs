//! core/v1 `Pod`, `PodTemplateSpec` and `PodSpec` with scheduling (affinity, tolerations,
//! topology spread), the pod security context, DNS, and `PodStatus`.

use super::container::{CONTAINER, CONTAINER_STATUS, EPHEMERAL_CONTAINER, RESOURCE_REQUIREMENTS};
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::objects::LOCAL_OBJECT_REFERENCE;
use super::volume::VOLUME;
use super::{BOOL, INT32, INT64, QUANTITY, STRING, TIME, messages, msg};

messages! {
    POD = core "Pod" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&POD_SPEC),
        3 "status" one msg(&POD_STATUS),
    }
    POD_TEMPLATE_SPEC = core "PodTemplateSpec" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&POD_SPEC),
    }
    POD_SPEC = core "PodSpec" {
        1 "volumes" list msg(&VOLUME),
        2 "containers" list msg(&CONTAINER),
        3 "restartPolicy" one STRING,
        4 "terminationGracePeriodSeconds" kept INT64,
        5 "activeDeadlineSeconds" kept INT64,
        6 "dnsPolicy" one STRING,
        7 "nodeSelector" map STRING,
        8 "serviceAccountName" one STRING,
        9 "serviceAccount" one STRING,
        10 "nodeName" one STRING,
        11 "hostNetwork" one BOOL,
        12 "hostPID" one BOOL,
        13 "hostIPC" one BOOL,
        14 "securityContext" one msg(&POD_SECURITY_CONTEXT),
        15 "imagePullSecrets" list msg(&LOCAL_OBJECT_REFERENCE),
        16 "hostname" one STRING,
        17 "subdomain" one STRING,
        18 "affinity" one msg(&AFFINITY),
        19 "schedulerName" one STRING,
        20 "initContainers" list msg(&CONTAINER),
        21 "automountServiceAccountToken" kept BOOL,
        22 "tolerations" list msg(&TOLERATION),
        23 "hostAliases" list msg(&HOST_ALIAS),
        24 "priorityClassName" one STRING,
        25 "priority" kept INT32,
        26 "dnsConfig" one msg(&POD_DNS_CONFIG),
        27 "shareProcessNamespace" kept BOOL,
        28 "readinessGates" list msg(&POD_READINESS_GATE),
        29 "runtimeClassName" kept STRING,
        30 "enableServiceLinks" kept BOOL,
        31 "preemptionPolicy" kept STRING,
        32 "overhead" map QUANTITY,
        33 "topologySpreadConstraints" list msg(&TOPOLOGY_SPREAD_CONSTRAINT),
        34 "ephemeralContainers" list msg(&EPHEMERAL_CONTAINER),
        35 "setHostnameAsFQDN" kept BOOL,
        36 "os" one msg(&POD_OS),
        37 "hostUsers" kept BOOL,
        38 "schedulingGates" list msg(&POD_SCHEDULING_GATE),
        39 "resourceClaims" list msg(&POD_RESOURCE_CLAIM),
        40 "resources" one msg(&RESOURCE_REQUIREMENTS),
    }
    POD_SECURITY_CONTEXT = core "PodSecurityContext" {
        1 "seLinuxOptions" one msg(&SE_LINUX_OPTIONS),
        2 "runAsUser" kept INT64,
        3 "runAsNonRoot" kept BOOL,
        4 "supplementalGroups" list INT64,
        5 "fsGroup" kept INT64,
        6 "runAsGroup" kept INT64,
        7 "sysctls" list msg(&SYSCTL),
        8 "windowsOptions" one msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS),
        9 "fsGroupChangePolicy" kept STRING,
        10 "seccompProfile" one msg(&SECCOMP_PROFILE),
        11 "appArmorProfile" one msg(&APP_ARMOR_PROFILE),
        12 "supplementalGroupsPolicy" kept STRING,
        13 "seLinuxChangePolicy" kept STRING,
    }
    SE_LINUX_OPTIONS = core "SELinuxOptions" {
        1 "user" one STRING,
        2 "role" one STRING,
        3 "type" one STRING,
        4 "level" one STRING,
    }
    WINDOWS_SECURITY_CONTEXT_OPTIONS = core "WindowsSecurityContextOptions" {
        1 "gmsaCredentialSpecName" kept STRING,
        2 "gmsaCredentialSpec" kept STRING,
        3 "runAsUserName" kept STRING,
        4 "hostProcess" kept BOOL,
    }
    SYSCTL = core "Sysctl" {
        1 "name" kept STRING,
        2 "value" kept STRING,
    }
    SECCOMP_PROFILE = core "SeccompProfile" {
        1 "type" kept STRING,
        2 "localhostProfile" kept STRING,
    }
    APP_ARMOR_PROFILE = core "AppArmorProfile" {
        1 "type" kept STRING,
        2 "localhostProfile" kept STRING,
    }
    AFFINITY = core "Affinity" {
        1 "nodeAffinity" one msg(&NODE_AFFINITY),
        2 "podAffinity" one msg(&POD_AFFINITY),
        3 "podAntiAffinity" one msg(&POD_ANTI_AFFINITY),
    }
    NODE_AFFINITY = core "NodeAffinity" {
        1 "requiredDuringSchedulingIgnoredDuringExecution" one msg(&NODE_SELECTOR),
        2 "preferredDuringSchedulingIgnoredDuringExecution" list msg(&PREFERRED_SCHEDULING_TERM),
    }
    NODE_SELECTOR = core "NodeSelector" {
        1 "nodeSelectorTerms" list msg(&NODE_SELECTOR_TERM),
    }
    NODE_SELECTOR_TERM = core "NodeSelectorTerm" {
        1 "matchExpressions" list msg(&NODE_SELECTOR_REQUIREMENT),
        2 "matchFields" list msg(&NODE_SELECTOR_REQUIREMENT),
    }
    NODE_SELECTOR_REQUIREMENT = core "NodeSelectorRequirement" {
        1 "key" kept STRING,
        2 "operator" kept STRING,
        3 "values" list STRING,
    }
    PREFERRED_SCHEDULING_TERM = core "PreferredSchedulingTerm" {
        1 "weight" kept INT32,
        2 "preference" one msg(&NODE_SELECTOR_TERM),
    }
    POD_AFFINITY = core "PodAffinity" {
        1 "requiredDuringSchedulingIgnoredDuringExecution" list msg(&POD_AFFINITY_TERM),
        2 "preferredDuringSchedulingIgnoredDuringExecution" list msg(&WEIGHTED_POD_AFFINITY_TERM),
    }
    POD_ANTI_AFFINITY = core "PodAntiAffinity" {
        1 "requiredDuringSchedulingIgnoredDuringExecution" list msg(&POD_AFFINITY_TERM),
        2 "preferredDuringSchedulingIgnoredDuringExecution" list msg(&WEIGHTED_POD_AFFINITY_TERM),
    }
    POD_AFFINITY_TERM = core "PodAffinityTerm" {
        1 "labelSelector" one msg(&LABEL_SELECTOR),
        2 "namespaces" list STRING,
        3 "topologyKey" kept STRING,
        4 "namespaceSelector" one msg(&LABEL_SELECTOR),
        5 "matchLabelKeys" list STRING,
        6 "mismatchLabelKeys" list STRING,
    }
    WEIGHTED_POD_AFFINITY_TERM = core "WeightedPodAffinityTerm" {
        1 "weight" kept INT32,
        2 "podAffinityTerm" one msg(&POD_AFFINITY_TERM),
    }
    TOLERATION = core "Toleration" {
        1 "key" one STRING,
        2 "operator" one STRING,
        3 "value" one STRING,
        4 "effect" one STRING,
        5 "tolerationSeconds" kept INT64,
    }
    TOPOLOGY_SPREAD_CONSTRAINT = core "TopologySpreadConstraint" {
        1 "maxSkew" kept INT32,
        2 "topologyKey" kept STRING,
        3 "whenUnsatisfiable" kept STRING,
        4 "labelSelector" one msg(&LABEL_SELECTOR),
        5 "minDomains" kept INT32,
        6 "nodeAffinityPolicy" kept STRING,
        7 "nodeTaintsPolicy" kept STRING,
        8 "matchLabelKeys" list STRING,
    }
    HOST_ALIAS = core "HostAlias" {
        1 "ip" kept STRING,
        2 "hostnames" list STRING,
    }
    POD_DNS_CONFIG = core "PodDNSConfig" {
        1 "nameservers" list STRING,
        2 "searches" list STRING,
        3 "options" list msg(&POD_DNS_CONFIG_OPTION),
    }
    POD_DNS_CONFIG_OPTION = core "PodDNSConfigOption" {
        1 "name" one STRING,
        2 "value" kept STRING,
    }
    POD_READINESS_GATE = core "PodReadinessGate" {
        1 "conditionType" kept STRING,
    }
    POD_OS = core "PodOS" {
        1 "name" kept STRING,
    }
    POD_SCHEDULING_GATE = core "PodSchedulingGate" {
        1 "name" kept STRING,
    }
    POD_RESOURCE_CLAIM = core "PodResourceClaim" {
        1 "name" kept STRING,
        3 "resourceClaimName" kept STRING,
        4 "resourceClaimTemplateName" kept STRING,
    }
    POD_STATUS = core "PodStatus" {
        1 "phase" one STRING,
        2 "conditions" list msg(&POD_CONDITION),
        3 "message" one STRING,
        4 "reason" one STRING,
        5 "hostIP" one STRING,
        6 "podIP" one STRING,
        7 "startTime" one TIME,
        8 "containerStatuses" list msg(&CONTAINER_STATUS),
        9 "qosClass" one STRING,
        10 "initContainerStatuses" list msg(&CONTAINER_STATUS),
        11 "nominatedNodeName" one STRING,
        12 "podIPs" list msg(&POD_IP),
        13 "ephemeralContainerStatuses" list msg(&CONTAINER_STATUS),
        14 "resize" one STRING,
        15 "resourceClaimStatuses" list msg(&POD_RESOURCE_CLAIM_STATUS),
        16 "hostIPs" list msg(&HOST_IP),
    }
    POD_CONDITION = core "PodCondition" {
        1 "type" kept STRING,
        2 "status" kept STRING,
        3 "lastProbeTime" one TIME,
        4 "lastTransitionTime" one TIME,
        5 "reason" one STRING,
        6 "message" one STRING,
    }
    HOST_IP = core "HostIP" {
        1 "ip" kept STRING,
    }
    POD_IP = core "PodIP" {
        1 "ip" kept STRING,
    }
    POD_RESOURCE_CLAIM_STATUS = core "PodResourceClaimStatus" {
        1 "name" kept STRING,
        2 "resourceClaimName" kept STRING,
    }
}
