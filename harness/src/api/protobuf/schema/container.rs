//! core/v1 `Container` and what it holds: ports, env, resources, mounts, probes, lifecycle
//! hooks, security context, and `ContainerStatus`. `EphemeralContainer` inlines `Container`
//! (upstream's `EphemeralContainerCommon` has the same fields and numbers).

use super::objects::LOCAL_OBJECT_REFERENCE;
use super::pod::{
    APP_ARMOR_PROFILE, SE_LINUX_OPTIONS, SECCOMP_PROFILE, WINDOWS_SECURITY_CONTEXT_OPTIONS,
};
use super::{BOOL, INT_OR_STRING, INT32, INT64, QUANTITY, STRING, TIME, messages, msg};

messages! {
    CONTAINER = core "Container" {
        1 "name" kept STRING,
        2 "image" one STRING,
        3 "command" list STRING,
        4 "args" list STRING,
        5 "workingDir" one STRING,
        6 "ports" list msg(&CONTAINER_PORT),
        7 "env" list msg(&ENV_VAR),
        8 "resources" one msg(&RESOURCE_REQUIREMENTS),
        9 "volumeMounts" list msg(&VOLUME_MOUNT),
        10 "livenessProbe" one msg(&PROBE),
        11 "readinessProbe" one msg(&PROBE),
        12 "lifecycle" one msg(&LIFECYCLE),
        13 "terminationMessagePath" one STRING,
        14 "imagePullPolicy" one STRING,
        15 "securityContext" one msg(&SECURITY_CONTEXT),
        16 "stdin" one BOOL,
        17 "stdinOnce" one BOOL,
        18 "tty" one BOOL,
        19 "envFrom" list msg(&ENV_FROM_SOURCE),
        20 "terminationMessagePolicy" one STRING,
        21 "volumeDevices" list msg(&VOLUME_DEVICE),
        22 "startupProbe" one msg(&PROBE),
        23 "resizePolicy" list msg(&CONTAINER_RESIZE_POLICY),
        24 "restartPolicy" kept STRING,
    }
    EPHEMERAL_CONTAINER = core "EphemeralContainer" {
        1 "" inline msg(&CONTAINER),
        2 "targetContainerName" one STRING,
    }
    CONTAINER_PORT = core "ContainerPort" {
        1 "name" one STRING,
        2 "hostPort" one INT32,
        3 "containerPort" kept INT32,
        4 "protocol" one STRING,
        5 "hostIP" one STRING,
    }
    ENV_VAR = core "EnvVar" {
        1 "name" kept STRING,
        2 "value" one STRING,
        3 "valueFrom" one msg(&ENV_VAR_SOURCE),
    }
    ENV_VAR_SOURCE = core "EnvVarSource" {
        1 "fieldRef" one msg(&OBJECT_FIELD_SELECTOR),
        2 "resourceFieldRef" one msg(&RESOURCE_FIELD_SELECTOR),
        3 "configMapKeyRef" one msg(&CONFIG_MAP_KEY_SELECTOR),
        4 "secretKeyRef" one msg(&SECRET_KEY_SELECTOR),
    }
    OBJECT_FIELD_SELECTOR = core "ObjectFieldSelector" {
        1 "apiVersion" one STRING,
        2 "fieldPath" kept STRING,
    }
    RESOURCE_FIELD_SELECTOR = core "ResourceFieldSelector" {
        1 "containerName" one STRING,
        2 "resource" kept STRING,
        3 "divisor" one QUANTITY,
    }
    CONFIG_MAP_KEY_SELECTOR = core "ConfigMapKeySelector" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "key" kept STRING,
        3 "optional" kept BOOL,
    }
    SECRET_KEY_SELECTOR = core "SecretKeySelector" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "key" kept STRING,
        3 "optional" kept BOOL,
    }
    ENV_FROM_SOURCE = core "EnvFromSource" {
        1 "prefix" one STRING,
        2 "configMapRef" one msg(&CONFIG_MAP_ENV_SOURCE),
        3 "secretRef" one msg(&SECRET_ENV_SOURCE),
    }
    CONFIG_MAP_ENV_SOURCE = core "ConfigMapEnvSource" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "optional" kept BOOL,
    }
    SECRET_ENV_SOURCE = core "SecretEnvSource" {
        1 "" inline msg(&LOCAL_OBJECT_REFERENCE),
        2 "optional" kept BOOL,
    }
    RESOURCE_REQUIREMENTS = core "ResourceRequirements" {
        1 "limits" map QUANTITY,
        2 "requests" map QUANTITY,
        3 "claims" list msg(&RESOURCE_CLAIM),
    }
    RESOURCE_CLAIM = core "ResourceClaim" {
        1 "name" kept STRING,
        2 "request" one STRING,
    }
    CONTAINER_RESIZE_POLICY = core "ContainerResizePolicy" {
        1 "resourceName" kept STRING,
        2 "restartPolicy" kept STRING,
    }
    VOLUME_MOUNT = core "VolumeMount" {
        1 "name" kept STRING,
        2 "readOnly" one BOOL,
        3 "mountPath" kept STRING,
        4 "subPath" one STRING,
        5 "mountPropagation" kept STRING,
        6 "subPathExpr" one STRING,
        7 "recursiveReadOnly" kept STRING,
    }
    VOLUME_DEVICE = core "VolumeDevice" {
        1 "name" kept STRING,
        2 "devicePath" kept STRING,
    }
    PROBE = core "Probe" {
        1 "" inline msg(&PROBE_HANDLER),
        2 "initialDelaySeconds" one INT32,
        3 "timeoutSeconds" one INT32,
        4 "periodSeconds" one INT32,
        5 "successThreshold" one INT32,
        6 "failureThreshold" one INT32,
        7 "terminationGracePeriodSeconds" kept INT64,
    }
    PROBE_HANDLER = core "ProbeHandler" {
        1 "exec" one msg(&EXEC_ACTION),
        2 "httpGet" one msg(&HTTP_GET_ACTION),
        3 "tcpSocket" one msg(&TCP_SOCKET_ACTION),
        4 "grpc" one msg(&GRPC_ACTION),
    }
    LIFECYCLE = core "Lifecycle" {
        1 "postStart" one msg(&LIFECYCLE_HANDLER),
        2 "preStop" one msg(&LIFECYCLE_HANDLER),
    }
    LIFECYCLE_HANDLER = core "LifecycleHandler" {
        1 "exec" one msg(&EXEC_ACTION),
        2 "httpGet" one msg(&HTTP_GET_ACTION),
        3 "tcpSocket" one msg(&TCP_SOCKET_ACTION),
        4 "sleep" one msg(&SLEEP_ACTION),
    }
    EXEC_ACTION = core "ExecAction" {
        1 "command" list STRING,
    }
    HTTP_GET_ACTION = core "HTTPGetAction" {
        1 "path" one STRING,
        2 "port" one INT_OR_STRING,
        3 "host" one STRING,
        4 "scheme" one STRING,
        5 "httpHeaders" list msg(&HTTP_HEADER),
    }
    HTTP_HEADER = core "HTTPHeader" {
        1 "name" kept STRING,
        2 "value" kept STRING,
    }
    TCP_SOCKET_ACTION = core "TCPSocketAction" {
        1 "port" one INT_OR_STRING,
        2 "host" one STRING,
    }
    GRPC_ACTION = core "GRPCAction" {
        1 "port" kept INT32,
        2 "service" kept STRING,
    }
    SLEEP_ACTION = core "SleepAction" {
        1 "seconds" kept INT64,
    }
    SECURITY_CONTEXT = core "SecurityContext" {
        1 "capabilities" one msg(&CAPABILITIES),
        2 "privileged" kept BOOL,
        3 "seLinuxOptions" one msg(&SE_LINUX_OPTIONS),
        4 "runAsUser" kept INT64,
        5 "runAsNonRoot" kept BOOL,
        6 "readOnlyRootFilesystem" kept BOOL,
        7 "allowPrivilegeEscalation" kept BOOL,
        8 "runAsGroup" kept INT64,
        9 "procMount" kept STRING,
        10 "windowsOptions" one msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS),
        11 "seccompProfile" one msg(&SECCOMP_PROFILE),
        12 "appArmorProfile" one msg(&APP_ARMOR_PROFILE),
    }
    CAPABILITIES = core "Capabilities" {
        1 "add" list STRING,
        2 "drop" list STRING,
    }
    CONTAINER_STATUS = core "ContainerStatus" {
        1 "name" kept STRING,
        2 "state" one msg(&CONTAINER_STATE),
        3 "lastState" one msg(&CONTAINER_STATE),
        4 "ready" kept BOOL,
        5 "restartCount" kept INT32,
        6 "image" kept STRING,
        7 "imageID" kept STRING,
        8 "containerID" one STRING,
        9 "started" kept BOOL,
        10 "allocatedResources" map QUANTITY,
        11 "resources" one msg(&RESOURCE_REQUIREMENTS),
        12 "volumeMounts" list msg(&VOLUME_MOUNT_STATUS),
        13 "user" one msg(&CONTAINER_USER),
        14 "allocatedResourcesStatus" list msg(&RESOURCE_STATUS),
    }
    CONTAINER_STATE = core "ContainerState" {
        1 "waiting" one msg(&CONTAINER_STATE_WAITING),
        2 "running" one msg(&CONTAINER_STATE_RUNNING),
        3 "terminated" one msg(&CONTAINER_STATE_TERMINATED),
    }
    CONTAINER_STATE_WAITING = core "ContainerStateWaiting" {
        1 "reason" one STRING,
        2 "message" one STRING,
    }
    CONTAINER_STATE_RUNNING = core "ContainerStateRunning" {
        1 "startedAt" one TIME,
    }
    CONTAINER_STATE_TERMINATED = core "ContainerStateTerminated" {
        1 "exitCode" kept INT32,
        2 "signal" one INT32,
        3 "reason" one STRING,
        4 "message" one STRING,
        5 "startedAt" one TIME,
        6 "finishedAt" one TIME,
        7 "containerID" one STRING,
    }
    VOLUME_MOUNT_STATUS = core "VolumeMountStatus" {
        1 "name" kept STRING,
        2 "mountPath" kept STRING,
        3 "readOnly" one BOOL,
        4 "recursiveReadOnly" kept STRING,
    }
    CONTAINER_USER = core "ContainerUser" {
        1 "linux" one msg(&LINUX_CONTAINER_USER),
    }
    LINUX_CONTAINER_USER = core "LinuxContainerUser" {
        1 "uid" kept INT64,
        2 "gid" kept INT64,
        3 "supplementalGroups" list INT64,
    }
    RESOURCE_STATUS = core "ResourceStatus" {
        1 "name" kept STRING,
        2 "resources" list msg(&RESOURCE_HEALTH),
    }
    RESOURCE_HEALTH = core "ResourceHealth" {
        1 "resourceID" kept STRING,
        2 "health" one STRING,
    }
}
