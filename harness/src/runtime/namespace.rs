//! [`ChildSetup`]: what a container process does between `fork` and `exec` — its own process
//! group, death with the harness, and a private mount and UTS namespace where its volumes
//! appear at their `mountPath`s and its hostname is the pod's name.
//!
//! Everything the child needs is prepared by the parent (C strings, file contents, file
//! descriptors): after a fork in a multi-threaded program the child may only make
//! async-signal-safe calls, and allocating is not one of them. [`ChildSetup::run`] therefore
//! only calls `prctl`, `getppid`, `unshare`, `open`, `write`, `close`, `mount`, `mkdir`,
//! `sethostname`, `setns` and `chdir`.
//!
//! As root the child unshares mount and UTS namespaces directly. Otherwise it first enters a
//! new user namespace mapping its own uid to root (what `unshare --map-root-user` does), which
//! unprivileged users may do on most distributions. [`support`] finds out once which works.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use super::mounts::{MountPlan, Step};

/// How container processes can get private namespaces on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Mount and UTS namespaces directly (root, or CAP_SYS_ADMIN).
    Direct,
    /// Through an unprivileged user namespace.
    User,
    /// Neither: volumes cannot appear at their mountPaths.
    Unavailable,
}

/// The reason a pod with volume mounts cannot run without namespaces.
pub const UNAVAILABLE: &str =
    "mount namespaces unavailable: run as root or enable unprivileged user namespaces";

/// Finds out (once) which kind of namespaces a child can create.
pub fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        for (support, ns) in [(Support::Direct, Ns::Direct), (Support::User, user_ns())] {
            let setup = ChildSetup {
                ns: Some(ns),
                ..ChildSetup::new()
            };
            let mut probe = std::process::Command::new("true");
            setup.install_std(&mut probe);
            if probe.status().is_ok_and(|s| s.success()) {
                return support;
            }
        }
        Support::Unavailable
    })
}

/// The namespaces to create.
#[derive(Clone, Debug)]
pub enum Ns {
    Direct,
    /// A user namespace first; `uid_map`/`gid_map` are the file contents.
    User {
        uid_map: Vec<u8>,
        gid_map: Vec<u8>,
    },
}

/// The user namespace mapping the caller's uid and gid to root.
pub fn user_ns() -> Ns {
    #[allow(unsafe_code)]
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Ns::User {
        uid_map: format!("0 {uid} 1\n").into_bytes(),
        gid_map: format!("0 {gid} 1\n").into_bytes(),
    }
}

impl Support {
    /// The namespaces a new container creates, if any.
    pub fn ns(self) -> Option<Ns> {
        match self {
            Support::Direct => Some(Ns::Direct),
            Support::User => Some(user_ns()),
            Support::Unavailable => None,
        }
    }
}

enum CStep {
    Overlay {
        target: CString,
        data: CString,
    },
    Mkdir(CString),
    Touch(CString),
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
    },
}

/// What the child does before `exec`, prepared in the parent.
pub struct ChildSetup {
    parent: libc::pid_t,
    ns: Option<Ns>,
    steps: Vec<CStep>,
    hostname: Option<Vec<u8>>,
    workdir: Option<CString>,
    /// Namespaces to join (`setns`), for commands run inside an existing container.
    join: Vec<(RawFd, libc::c_int)>,
}

impl std::fmt::Debug for ChildSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSetup").finish_non_exhaustive()
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

impl ChildSetup {
    /// Only the process group and the parent-death signal.
    pub fn new() -> ChildSetup {
        ChildSetup {
            parent: std::process::id() as libc::pid_t,
            ns: None,
            steps: Vec::new(),
            hostname: None,
            workdir: None,
            join: Vec::new(),
        }
    }

    /// A container: new namespaces, the mount plan replayed, the hostname set.
    pub fn container(
        ns: Option<Ns>,
        plan: &MountPlan,
        hostname: &str,
        workdir: Option<&Path>,
    ) -> io::Result<ChildSetup> {
        let mut steps = Vec::new();
        for step in &plan.steps {
            steps.push(match step {
                Step::Overlay {
                    target,
                    upper,
                    work,
                } => CStep::Overlay {
                    target: cstring(target)?,
                    data: CString::new(format!(
                        "lowerdir={},upperdir={},workdir={}",
                        target.display(),
                        upper.display(),
                        work.display()
                    ))
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?,
                },
                Step::Mkdir(p) => CStep::Mkdir(cstring(p)?),
                Step::Touch(p) => CStep::Touch(cstring(p)?),
                Step::Bind {
                    source,
                    target,
                    read_only,
                } => CStep::Bind {
                    source: cstring(source)?,
                    target: cstring(target)?,
                    read_only: *read_only,
                },
            });
        }
        let hostname = ns.is_some().then(|| {
            let mut name = hostname.as_bytes().to_vec();
            name.truncate(64);
            name
        });
        Ok(ChildSetup {
            ns,
            steps,
            hostname,
            workdir: workdir.map(cstring).transpose()?,
            ..ChildSetup::new()
        })
    }

    /// A command inside a running container: join its namespaces through these open
    /// `/proc/<pid>/ns/*` descriptors, in order (user first).
    pub fn joining(join: Vec<(RawFd, libc::c_int)>) -> ChildSetup {
        ChildSetup {
            join,
            ..ChildSetup::new()
        }
    }

    /// Installs the setup on a Tokio command.
    #[allow(unsafe_code)]
    pub fn install(self, command: &mut tokio::process::Command) {
        // SAFETY: `run` is async-signal-safe: it only makes the system calls listed in the
        // module docs, on data owned by the closure and prepared before the fork, and never
        // allocates or takes a lock.
        unsafe {
            command.pre_exec(move || self.run());
        }
    }

    /// Installs the setup on a std command.
    #[allow(unsafe_code)]
    pub fn install_std(self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: as in `install`.
        unsafe {
            command.pre_exec(move || self.run());
        }
    }

    #[allow(unsafe_code)]
    fn run(&self) -> io::Result<()> {
        // SAFETY (whole function): each call below is a plain system call on pointers to
        // NUL-terminated strings or byte slices owned by `self`, which outlives the calls.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The harness may have died between the fork and the prctl.
            if libc::getppid() != self.parent {
                libc::_exit(137);
            }
            for (fd, kind) in &self.join {
                if libc::setns(*fd, *kind) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            let flags = match &self.ns {
                None => 0,
                Some(Ns::Direct) => libc::CLONE_NEWNS | libc::CLONE_NEWUTS,
                Some(Ns::User { .. }) => {
                    libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWUTS
                }
            };
            if flags != 0 && libc::unshare(flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(Ns::User { uid_map, gid_map }) = &self.ns {
                write_file(c"/proc/self/setgroups", b"deny")?;
                write_file(c"/proc/self/uid_map", uid_map)?;
                write_file(c"/proc/self/gid_map", gid_map)?;
            }
            if self.ns.is_some() {
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            for step in &self.steps {
                match step {
                    CStep::Overlay { target, data } => {
                        let r = libc::mount(
                            c"overlay".as_ptr(),
                            target.as_ptr(),
                            c"overlay".as_ptr(),
                            0,
                            data.as_ptr().cast(),
                        );
                        if r != 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    CStep::Mkdir(path) => {
                        if libc::mkdir(path.as_ptr(), 0o755) != 0 {
                            let err = io::Error::last_os_error();
                            if err.raw_os_error() != Some(libc::EEXIST) {
                                return Err(err);
                            }
                        }
                    }
                    CStep::Touch(path) => {
                        let fd = libc::open(
                            path.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        libc::close(fd);
                    }
                    CStep::Bind {
                        source,
                        target,
                        read_only,
                    } => {
                        let r = libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        );
                        if r != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        if *read_only {
                            // Best effort: a user namespace may refuse to change locked flags.
                            libc::mount(
                                std::ptr::null(),
                                target.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                                std::ptr::null(),
                            );
                        }
                    }
                }
            }
            if let Some(name) = &self.hostname
                && libc::sethostname(name.as_ptr().cast(), name.len()) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if let Some(dir) = &self.workdir {
                // A workingDir missing on this machine leaves the process in `/`.
                libc::chdir(dir.as_ptr());
            }
        }
        Ok(())
    }
}

impl Default for ChildSetup {
    fn default() -> ChildSetup {
        ChildSetup::new()
    }
}

#[allow(unsafe_code)]
fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path and a live byte slice.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if written != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// Sends `signal` to a process group.
#[allow(unsafe_code)]
pub fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Whether a process exists (a zombie counts).
#[allow(unsafe_code)]
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}
