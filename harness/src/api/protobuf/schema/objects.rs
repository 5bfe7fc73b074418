//! The core/v1 objects other than Pod: `Namespace`, `ConfigMap`, `Secret`, `Service`,
//! `Endpoints`, `Event`, and the object references they share.

use super::meta::{CONDITION, OBJECT_META};
use super::{BOOL, BYTES, INT_OR_STRING, INT32, MICRO_TIME, STRING, TIME, messages, msg};

messages! {
    NAMESPACE = core "Namespace" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&NAMESPACE_SPEC),
        3 "status" one msg(&NAMESPACE_STATUS),
    }
    NAMESPACE_SPEC = core "NamespaceSpec" {
        1 "finalizers" list STRING,
    }
    NAMESPACE_STATUS = core "NamespaceStatus" {
        1 "phase" one STRING,
        2 "conditions" list msg(&NAMESPACE_CONDITION),
    }
    NAMESPACE_CONDITION = core "NamespaceCondition" {
        1 "type" kept STRING,
        2 "status" kept STRING,
        4 "lastTransitionTime" one TIME,
        5 "reason" one STRING,
        6 "message" one STRING,
    }
    CONFIG_MAP = core "ConfigMap" {
        1 "metadata" one msg(&OBJECT_META),
        2 "data" map STRING,
        3 "binaryData" map BYTES,
        4 "immutable" kept BOOL,
    }
    SECRET = core "Secret" {
        1 "metadata" one msg(&OBJECT_META),
        2 "data" map BYTES,
        3 "type" one STRING,
        4 "stringData" map STRING,
        5 "immutable" kept BOOL,
    }
    SERVICE = core "Service" {
        1 "metadata" one msg(&OBJECT_META),
        2 "spec" one msg(&SERVICE_SPEC),
        3 "status" one msg(&SERVICE_STATUS),
    }
    SERVICE_SPEC = core "ServiceSpec" {
        1 "ports" list msg(&SERVICE_PORT),
        2 "selector" map STRING,
        3 "clusterIP" one STRING,
        4 "type" one STRING,
        5 "externalIPs" list STRING,
        7 "sessionAffinity" one STRING,
        8 "loadBalancerIP" one STRING,
        9 "loadBalancerSourceRanges" list STRING,
        10 "externalName" one STRING,
        11 "externalTrafficPolicy" one STRING,
        12 "healthCheckNodePort" one INT32,
        13 "publishNotReadyAddresses" one BOOL,
        14 "sessionAffinityConfig" one msg(&SESSION_AFFINITY_CONFIG),
        17 "ipFamilyPolicy" kept STRING,
        18 "clusterIPs" list STRING,
        19 "ipFamilies" list STRING,
        20 "allocateLoadBalancerNodePorts" kept BOOL,
        21 "loadBalancerClass" kept STRING,
        22 "internalTrafficPolicy" kept STRING,
        23 "trafficDistribution" kept STRING,
    }
    SERVICE_PORT = core "ServicePort" {
        1 "name" one STRING,
        2 "protocol" one STRING,
        3 "port" kept INT32,
        4 "targetPort" one INT_OR_STRING,
        5 "nodePort" one INT32,
        6 "appProtocol" kept STRING,
    }
    SESSION_AFFINITY_CONFIG = core "SessionAffinityConfig" {
        1 "clientIP" one msg(&CLIENT_IP_CONFIG),
    }
    CLIENT_IP_CONFIG = core "ClientIPConfig" {
        1 "timeoutSeconds" kept INT32,
    }
    SERVICE_STATUS = core "ServiceStatus" {
        1 "loadBalancer" one msg(&LOAD_BALANCER_STATUS),
        2 "conditions" list msg(&CONDITION),
    }
    LOAD_BALANCER_STATUS = core "LoadBalancerStatus" {
        1 "ingress" list msg(&LOAD_BALANCER_INGRESS),
    }
    LOAD_BALANCER_INGRESS = core "LoadBalancerIngress" {
        1 "ip" one STRING,
        2 "hostname" one STRING,
        3 "ipMode" kept STRING,
        4 "ports" list msg(&PORT_STATUS),
    }
    PORT_STATUS = core "PortStatus" {
        1 "port" kept INT32,
        2 "protocol" kept STRING,
        3 "error" kept STRING,
    }
    ENDPOINTS = core "Endpoints" {
        1 "metadata" one msg(&OBJECT_META),
        2 "subsets" list msg(&ENDPOINT_SUBSET),
    }
    ENDPOINT_SUBSET = core "EndpointSubset" {
        1 "addresses" list msg(&ENDPOINT_ADDRESS),
        2 "notReadyAddresses" list msg(&ENDPOINT_ADDRESS),
        3 "ports" list msg(&ENDPOINT_PORT),
    }
    ENDPOINT_ADDRESS = core "EndpointAddress" {
        1 "ip" kept STRING,
        2 "targetRef" one msg(&OBJECT_REFERENCE),
        3 "hostname" one STRING,
        4 "nodeName" kept STRING,
    }
    ENDPOINT_PORT = core "EndpointPort" {
        1 "name" one STRING,
        2 "port" kept INT32,
        3 "protocol" one STRING,
        4 "appProtocol" kept STRING,
    }
    EVENT = core "Event" {
        1 "metadata" one msg(&OBJECT_META),
        2 "involvedObject" one msg(&OBJECT_REFERENCE),
        3 "reason" one STRING,
        4 "message" one STRING,
        5 "source" one msg(&EVENT_SOURCE),
        6 "firstTimestamp" one TIME,
        7 "lastTimestamp" one TIME,
        8 "count" one INT32,
        9 "type" one STRING,
        10 "eventTime" one MICRO_TIME,
        11 "series" one msg(&EVENT_SERIES),
        12 "action" one STRING,
        13 "related" one msg(&OBJECT_REFERENCE),
        14 "reportingComponent" kept STRING,
        15 "reportingInstance" kept STRING,
    }
    EVENT_SOURCE = core "EventSource" {
        1 "component" one STRING,
        2 "host" one STRING,
    }
    EVENT_SERIES = core "EventSeries" {
        1 "count" one INT32,
        2 "lastObservedTime" one MICRO_TIME,
    }
    OBJECT_REFERENCE = core "ObjectReference" {
        1 "kind" one STRING,
        2 "namespace" one STRING,
        3 "name" one STRING,
        4 "uid" one STRING,
        5 "apiVersion" one STRING,
        6 "resourceVersion" one STRING,
        7 "fieldPath" one STRING,
    }
    LOCAL_OBJECT_REFERENCE = core "LocalObjectReference" {
        1 "name" one STRING,
    }
}
