//! What the kubelet knows about a pod ([`PodRecord`], [`ContainerRecord`]) and how it becomes
//! `pod.status`: phase by upstream's `getPhase`, the five conditions with `lastTransitionTime`
//! moved only on a transition, and container statuses with the exact waiting and terminated
//! reasons `kubectl get pods` turns into its STATUS column.
//!
//! Everything here is pure: the worker keeps the records and calls [`render`] to write.

use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The node's address, as `status.hostIP`.
pub const HOST_IP: &str = "127.0.0.1";

/// Waiting reasons kubectl shows as STATUS.
pub mod reason {
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const COMPLETED: &str = "Completed";
    pub const ERROR: &str = "Error";
}

/// A container's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Termination),
}

/// How a container instance ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Termination {
    /// `Completed` for exit code 0, `Error` otherwise (no OOM killer here, so never
    /// `OOMKilled`).
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 {
            reason::COMPLETED
        } else {
            reason::ERROR
        }
    }
}

/// What the kubelet knows about one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: Option<String>,
    pub container_id: Option<String>,
    pub state: State,
    pub last: Option<Termination>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
}

impl ContainerRecord {
    /// A container not created yet: waiting in `ContainerCreating`.
    pub fn new(name: &str, image: &str) -> ContainerRecord {
        ContainerRecord {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: None,
            container_id: None,
            state: State::Waiting {
                reason: reason::CONTAINER_CREATING.to_owned(),
                message: None,
            },
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }
}

/// What the kubelet knows about one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    pub containers: Vec<ContainerRecord>,
    pub pod_ip: Option<Ipv4Addr>,
    pub start_time: Timestamp,
    /// The pod will never run a container again (deleted and stopped, or finished for good).
    pub terminal: bool,
}

/// The pod's phase, as upstream's `getPhase`.
pub fn phase(restart_policy: &str, containers: &[ContainerRecord], terminal: bool) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if terminal {
            if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// Upstream's QoS class from the containers' requests and limits.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in &spec.containers {
        let resources = c.resources.clone().unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        any |= !limits.is_empty() || !requests.is_empty();
        for resource in ["cpu", "memory"] {
            let limit = limits.get(resource);
            let request = requests.get(resource).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The pod's status from `record`, keeping transition times of unchanged conditions from
/// `pod.status`. A phase that ended (Succeeded, Failed) never changes again.
pub fn render(pod: &Pod, record: &PodRecord, now: Timestamp) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut phase = phase(restart_policy, &record.containers, record.terminal).to_owned();
    if let Some(old_phase) = old.phase.as_deref()
        && matches!(old_phase, "Succeeded" | "Failed")
    {
        phase = old_phase.to_owned();
    }
    let finished = matches!(phase.as_str(), "Succeeded" | "Failed");

    let unready: Vec<&str> = record
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let ready = unready.is_empty() && !finished;
    let (ready_reason, ready_message) = if finished {
        (Some("PodCompleted"), None)
    } else if ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let condition = |type_: &str, status: bool, reason: Option<&str>, message: Option<String>| {
        let status = if status { "True" } else { "False" };
        let previous = old.conditions.iter().flatten().find(|c| c.type_ == type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time,
            last_probe_time: None,
            observed_generation: None,
        }
    };
    let sandbox = record.pod_ip.is_some() && !record.terminal;
    let conditions = vec![
        condition("PodReadyToStartContainers", sandbox, None, None),
        condition("Initialized", true, None, None),
        condition("Ready", ready, ready_reason, ready_message.clone()),
        condition("ContainersReady", ready, ready_reason, ready_message),
        condition("PodScheduled", true, None, None),
    ];

    let ip = record.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(HOST_IP.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: HOST_IP.to_owned(),
        }]),
        pod_ip: ip.clone().or(old.pod_ip),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]).or(old.pod_ips),
        start_time: Some(Time(record.start_time)),
        qos_class: Some(qos_class(&spec).to_owned()),
        container_statuses: Some(record.containers.iter().map(container_status).collect()),
        ..Default::default()
    }
}

fn terminated(t: &Termination) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

fn container_status(c: &ContainerRecord) -> ContainerStatus {
    let state = match &c.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone().unwrap_or_default(),
        container_id: c.container_id.clone(),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(ContainerState {
            terminated: c.last.as_ref().map(terminated),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: State, last: bool) -> ContainerRecord {
        let mut c = ContainerRecord::new("hostbot", "hostbot:1");
        c.state = state;
        if last {
            c.last = Some(exited(1));
        }
        c
    }

    fn exited(code: i32) -> Termination {
        Termination {
            exit_code: code,
            signal: None,
            reason: Termination::reason_for(code).to_owned(),
            message: None,
            started_at: None,
            finished_at: Timestamp::UNIX_EPOCH,
            container_id: None,
        }
    }

    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    #[test]
    fn phases_follow_get_phase() {
        let running = State::Running {
            started_at: Timestamp::UNIX_EPOCH,
        };
        let ok = State::Terminated(exited(0));
        let failed = State::Terminated(exited(2));
        let cases: Vec<(&str, Vec<ContainerRecord>, bool, &str)> = vec![
            (
                "Always",
                vec![container(waiting("ContainerCreating"), false)],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![container(waiting("CrashLoopBackOff"), true)],
                false,
                "Running",
            ),
            (
                "Always",
                vec![container(running.clone(), false)],
                false,
                "Running",
            ),
            (
                "Always",
                vec![
                    container(running.clone(), false),
                    container(waiting("ErrImagePull"), false),
                ],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![container(ok.clone(), false)],
                false,
                "Running",
            ),
            (
                "Always",
                vec![container(ok.clone(), false)],
                true,
                "Succeeded",
            ),
            (
                "Always",
                vec![container(failed.clone(), false)],
                true,
                "Failed",
            ),
            (
                "Never",
                vec![container(failed.clone(), false)],
                false,
                "Failed",
            ),
            (
                "Never",
                vec![container(ok.clone(), false)],
                false,
                "Succeeded",
            ),
            (
                "OnFailure",
                vec![container(failed.clone(), false)],
                false,
                "Running",
            ),
            ("OnFailure", vec![container(ok, false)], false, "Succeeded"),
            (
                "Never",
                vec![container(running, false), container(failed, false)],
                false,
                "Running",
            ),
        ];
        for (policy, containers, terminal, want) in cases {
            assert_eq!(
                phase(policy, &containers, terminal),
                want,
                "{policy} {containers:?}"
            );
        }
    }

    #[test]
    fn transition_times_move_only_on_transitions() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let t2 = Timestamp::from_second(3_000).unwrap();
        let mut record = PodRecord {
            containers: vec![container(waiting("ContainerCreating"), false)],
            pod_ip: Some(Ipv4Addr::new(127, 1, 0, 9)),
            start_time: t0,
            terminal: false,
        };
        let mut pod = Pod::default();
        pod.status = Some(render(&pod, &record, t0));
        let get = |pod: &Pod, t: &str| {
            pod.status
                .as_ref()
                .unwrap()
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap()
        };
        let ready = get(&pod, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [hostbot]")
        );
        pod.status = Some(render(&pod, &record, t1));
        assert_eq!(get(&pod, "Ready").last_transition_time, Some(Time(t0)));
        record.containers[0].state = State::Running { started_at: t1 };
        record.containers[0].ready = true;
        pod.status = Some(render(&pod, &record, t2));
        let ready = get(&pod, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time),
            ("True", Some(Time(t2)))
        );
        assert_eq!(
            get(&pod, "PodScheduled").last_transition_time,
            Some(Time(t0))
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.1.0.9"));
        assert_eq!(status.host_ip.as_deref(), Some(HOST_IP));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn finished_phases_stick() {
        let t0 = Timestamp::UNIX_EPOCH;
        let mut pod = Pod {
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let record = PodRecord {
            containers: vec![container(State::Terminated(exited(0)), false)],
            pod_ip: None,
            start_time: t0,
            terminal: true,
        };
        pod.status = Some(render(&pod, &record, t0));
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Succeeded")
        );
        let mut later = record.clone();
        later.containers[0].state = State::Terminated(exited(1));
        let status = render(&pod, &later, t0);
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    }
}
