//! Services: long-running processes in a started workspace, run by its
//! agent. The store keeps the host's record of each (for counts, and for
//! what happened to them when the guest went away); the agent is the truth
//! while the guest runs.

use pyro_store::WorkspaceRecord;
use pyro_vmm::process::ProcRef;
use pyro_vmm::VmHandle;

use crate::api::{
    NetworkPolicy, Readiness, ServiceInfo, ServiceList, ServiceLogs, ServiceLogsParams, ServiceRef,
    ServiceStartParams, ServiceState, WorkspaceRef,
};
use crate::progress::{Event, Progress};
use crate::{Error, Manager};

/// Key of a service record that holds its port proxies (host-only, never
/// in the public payload).
pub(super) const PROXIES: &str = "proxies";

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn state(s: pyro_proto::ServiceState) -> ServiceState {
    match s {
        pyro_proto::ServiceState::Running => ServiceState::Running,
        pyro_proto::ServiceState::Exited => ServiceState::Exited,
        pyro_proto::ServiceState::Stopped => ServiceState::Stopped,
        pyro_proto::ServiceState::Failed => ServiceState::Failed,
    }
}

fn readiness(r: pyro_proto::Readiness) -> Readiness {
    match r {
        pyro_proto::Readiness::File { path } => Readiness::File { path },
        pyro_proto::Readiness::Tcp { address } => Readiness::Tcp { address },
        pyro_proto::Readiness::Http { url } => Readiness::Http { url },
        pyro_proto::Readiness::Command { command } => Readiness::Command { command },
    }
}

fn info(id: &str, s: pyro_proto::ServiceStatus) -> ServiceInfo {
    ServiceInfo {
        workspace_id: id.to_string(),
        service_name: s.name,
        state: state(s.state),
        command: s.command,
        cwd: s.cwd,
        started_at: secs(s.started_at_ms),
        ready_at: s.ready_at_ms.map(secs),
        ended_at: s.ended_at_ms.map(secs),
        exit_code: s.exit_code,
        pid: s
            .pid
            .filter(|_| s.state == pyro_proto::ServiceState::Running),
        stop_reason: s.stop_reason,
        readiness: s.readiness.map(readiness),
        published_ports: Vec::new(),
        execution_mode: "guest_vsock".into(),
    }
}

fn state_str(s: ServiceState) -> &'static str {
    match s {
        ServiceState::Running => "running",
        ServiceState::Exited => "exited",
        ServiceState::Stopped => "stopped",
        ServiceState::Failed => "failed",
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "service name '{name}' must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
        )))
    }
}

impl Manager {
    fn save_service(&self, s: &ServiceInfo) -> Result<ServiceInfo, Error> {
        self.save_service_with(s.clone(), None)
    }

    /// Saves a service's record. The same run of the service (same start
    /// time) keeps its published ports and proxies unless `proxies` gives
    /// new ones; a service no longer running has its proxies stopped.
    fn save_service_with(
        &self,
        mut s: ServiceInfo,
        proxies: Option<Vec<ProcRef>>,
    ) -> Result<ServiceInfo, Error> {
        let store = self.store()?;
        let old = store
            .services(&s.workspace_id)?
            .into_iter()
            .find(|(name, _, _)| *name == s.service_name)
            .map(|(_, _, record)| record);
        let mut procs = proxies.unwrap_or_default();
        if let Some(old) = old {
            let same_run = old.get("started_at").and_then(|v| v.as_f64()) == Some(s.started_at);
            let old_procs: Vec<ProcRef> = old
                .get(PROXIES)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            if same_run && procs.is_empty() {
                procs = old_procs;
                if s.published_ports.is_empty() {
                    s.published_ports = old
                        .get("published_ports")
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default();
                }
            } else {
                super::ports::stop(&old_procs);
            }
        }
        if s.state != ServiceState::Running {
            super::ports::stop(&procs);
            procs.clear();
        }
        let mut record = serde_json::to_value(&s).unwrap_or_default();
        if let Some(obj) = record.as_object_mut() {
            obj.insert(
                PROXIES.into(),
                serde_json::to_value(&procs).unwrap_or_default(),
            );
        }
        store.put_service(
            &s.workspace_id,
            &s.service_name,
            state_str(s.state),
            &record,
        )?;
        Ok(s)
    }

    /// The store's records of a workspace's services.
    fn stored_services(&self, id: &str) -> Result<Vec<ServiceInfo>, Error> {
        Ok(self
            .store()?
            .services(id)?
            .into_iter()
            .filter_map(|(_, _, record)| serde_json::from_value(record).ok())
            .collect())
    }

    /// Starts a service in a started workspace and waits for its
    /// readiness. A service that never became ready comes back `failed`
    /// (the CLI exits non-zero).
    pub fn service_start(
        &self,
        p: ServiceStartParams,
        progress: &mut dyn Progress,
    ) -> Result<ServiceInfo, Error> {
        check_name(&p.service_name)?;
        p.command.validate()?;
        let ready: Vec<pyro_proto::Readiness> = [
            p.ready_file
                .clone()
                .map(|path| pyro_proto::Readiness::File { path }),
            p.ready_tcp
                .clone()
                .map(|address| pyro_proto::Readiness::Tcp { address }),
            p.ready_http
                .clone()
                .map(|url| pyro_proto::Readiness::Http { url }),
            p.ready_command
                .clone()
                .map(|command| pyro_proto::Readiness::Command { command }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if ready.len() > 1 {
            return Err(Error::InvalidArgument(
                "choose at most one of ready_file, ready_tcp, ready_http or ready_command".into(),
            ));
        }
        let readiness = ready.into_iter().next();
        match &readiness {
            Some(pyro_proto::Readiness::File { path }) => {
                pyro_proto::paths::resolve(path)
                    .map_err(|e| Error::InvalidArgument(format!("ready_file: {e}")))?;
            }
            Some(pyro_proto::Readiness::Tcp { address }) => {
                let ok = address.rsplit_once(':').is_some_and(|(h, port)| {
                    !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !ok {
                    return Err(Error::InvalidArgument(format!(
                        "ready_tcp '{address}' must be HOST:PORT with a port of 1-65535"
                    )));
                }
            }
            Some(pyro_proto::Readiness::Http { url }) if !url.starts_with("http://") => {
                return Err(Error::InvalidArgument(format!(
                    "ready_http '{url}' must be an http:// URL (probed from inside the guest)"
                )));
            }
            _ => {}
        }
        if p.ready_timeout_seconds == 0 || p.ready_timeout_seconds > 3600 {
            return Err(Error::InvalidArgument(
                "ready_timeout_seconds must be between 1 and 3600".into(),
            ));
        }
        if p.ready_interval_ms == 0 || p.ready_interval_ms > 60_000 {
            return Err(Error::InvalidArgument(
                "ready_interval_ms must be between 1 and 60000".into(),
            ));
        }
        super::ports::validate(&p.published_ports)?;
        if !p.cwd.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "cwd must be an absolute path in the guest, got '{}'",
                p.cwd
            )));
        }
        let (r, vm) = self.started(&p.workspace_id, "service start")?;
        let policy = super::info(&r).network_policy;
        if !p.published_ports.is_empty() && policy != NetworkPolicy::EgressPublishedPorts {
            return Err(Error::InvalidArgument(format!(
                "published ports need the egress+published-ports network policy, and workspace '{}' has '{}' (the policy is chosen at create)",
                p.workspace_id,
                policy.as_str()
            )));
        }
        let (env, redactor) = self.secret_env(&r, &p.secret_env)?;
        // An ended run of the same name may still hold its host ports.
        if let Some(old) = self
            .stored_services(&r.workspace_id)?
            .into_iter()
            .find(|s| s.service_name == p.service_name && s.state != ServiceState::Running)
        {
            self.save_service(&old)?;
        }
        // Bound before the service starts: a taken port fails with nothing
        // started.
        let bound = super::ports::bind(&p.published_ports)?;
        progress.event(Event::Notice(&format!(
            "starting service '{}'{}",
            p.service_name,
            if readiness.is_some() {
                " and waiting until it is ready"
            } else {
                ""
            }
        )));
        let req = pyro_proto::ServiceStartRequest {
            name: p.service_name.clone(),
            argv: p.command.argv(),
            command: redactor.redact_str(&p.command.display()),
            cwd: p.cwd.clone(),
            env,
            readiness,
            ready_timeout_ms: p.ready_timeout_seconds * 1000,
            ready_interval_ms: p.ready_interval_ms,
        };
        let status = self.on_guest(&r, &p.workspace_id, &vm, |vm| Ok(vm.service_start(req)?))?;
        let mut s = info(&r.workspace_id, status);
        let mut proxies = Vec::new();
        if s.state == ServiceState::Running && !bound.is_empty() {
            match super::ports::start_proxies(&self.config().agent_path, &vm, bound) {
                Ok((ports, procs)) => {
                    s.published_ports = ports;
                    proxies = procs;
                }
                Err(e) => {
                    // Never a service that claims ports it does not have.
                    if let Ok(st) = vm.service_stop(&s.service_name) {
                        s = info(&r.workspace_id, st);
                    }
                    s.state = ServiceState::Failed;
                    s.stop_reason = Some("published_port_failed".into());
                    s.pid = None;
                    self.save_service(&s)?;
                    return Err(e);
                }
            }
        }
        let s = self.save_service_with(s, Some(proxies))?;
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(s)
    }

    /// The guest's services merged over the stored records (which keep
    /// what happened to services of earlier boots), saved back.
    fn current_services(
        &self,
        r: &WorkspaceRecord,
        vm: Option<&VmHandle>,
    ) -> Result<Vec<ServiceInfo>, Error> {
        let mut by_name: std::collections::BTreeMap<String, ServiceInfo> = self
            .stored_services(&r.workspace_id)?
            .into_iter()
            .map(|s| (s.service_name.clone(), s))
            .collect();
        if let Some(vm) = vm {
            let live = self.on_guest(r, &r.workspace_id, vm, |vm| Ok(vm.service_list()?))?;
            for s in live {
                let s = self.save_service(&info(&r.workspace_id, s))?;
                by_name.insert(s.service_name.clone(), s);
            }
        }
        Ok(by_name.into_values().collect())
    }

    /// A workspace's services (live from its guest when started). Not
    /// activity.
    pub fn service_list(
        &self,
        p: WorkspaceRef,
        _progress: &mut dyn Progress,
    ) -> Result<ServiceList, Error> {
        let r = self.load(&p.workspace_id)?;
        let vm = super::exec::require_started(&r, &p.workspace_id, "service list").ok();
        let services = self.current_services(&r, vm.as_ref())?;
        Ok(ServiceList {
            workspace_id: r.workspace_id,
            count: services.len(),
            running_count: services
                .iter()
                .filter(|s| s.state == ServiceState::Running)
                .count(),
            services,
        })
    }

    /// One service. Not activity.
    pub fn service_status(
        &self,
        p: ServiceRef,
        progress: &mut dyn Progress,
    ) -> Result<ServiceInfo, Error> {
        let list = self.service_list(WorkspaceRef::new(&p.workspace_id), progress)?;
        let id = list.workspace_id.clone();
        list.services
            .into_iter()
            .find(|s| s.service_name == p.service_name)
            .ok_or_else(|| service_not_found(&id, &p.service_name))
    }

    /// The end of a service's output (secret values redacted). Not
    /// activity.
    pub fn service_logs(
        &self,
        p: ServiceLogsParams,
        progress: &mut dyn Progress,
    ) -> Result<ServiceLogs, Error> {
        if !p.all && p.tail_lines == 0 {
            return Err(Error::InvalidArgument(
                "tail_lines must be greater than 0".into(),
            ));
        }
        let service = self.service_status(
            ServiceRef {
                workspace_id: p.workspace_id.clone(),
                service_name: p.service_name.clone(),
            },
            progress,
        )?;
        let (r, vm) = self.started(&p.workspace_id, "service logs")?;
        let tail = (!p.all).then_some(p.tail_lines);
        let (stdout, stderr, truncated) = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            Ok(vm.service_logs(&p.service_name, tail)?)
        })?;
        let redactor = self.redactor(&r)?;
        Ok(ServiceLogs {
            service,
            stdout: redactor.redact_str(&stdout),
            stderr: redactor.redact_str(&stderr),
            tail_lines: tail,
            truncated,
        })
    }

    /// Stops a service: TERM to its process group, KILL after 5 s. Counts
    /// as activity.
    pub fn service_stop(
        &self,
        p: ServiceRef,
        _progress: &mut dyn Progress,
    ) -> Result<ServiceInfo, Error> {
        let (r, vm) = self.started(&p.workspace_id, "service stop")?;
        let status = self
            .on_guest(&r, &p.workspace_id, &vm, |vm| {
                Ok(vm.service_stop(&p.service_name)?)
            })
            .map_err(|e| match e.code() {
                crate::ErrorCode::NotFound => service_not_found(&r.workspace_id, &p.service_name),
                _ => e,
            })?;
        let s = self.save_service(&info(&r.workspace_id, status))?;
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(s)
    }

    /// Before a workspace's guest goes away (stop, reset): running services
    /// are stopped cleanly where the guest still answers, and every record
    /// still running says why it ended.
    pub(crate) fn end_services(&self, id: &str, vm: Option<&VmHandle>, reason: &str) {
        let Ok(records) = self.stored_services(id) else {
            return;
        };
        for mut s in records {
            if s.state != ServiceState::Running {
                continue;
            }
            let stopped = vm.and_then(|vm| vm.service_stop(&s.service_name).ok());
            if let Some(st) = stopped {
                s = info(id, st);
            }
            s.state = ServiceState::Stopped;
            s.stop_reason = Some(reason.to_string());
            s.pid = None;
            if s.ended_at.is_none() {
                s.ended_at = Some(crate::now());
            }
            let _ = self.save_service(&s);
        }
    }
}

fn service_not_found(id: &str, name: &str) -> Error {
    Error::PathNotFound(format!(
        "service '{name}' does not exist in workspace '{id}'"
    ))
}
