//! Commands in a workspace and their history.

use pyro_store::{StoreError, WorkspaceRecord, WorkspaceState};
use pyro_vmm::{VmHandle, VmmError};

use super::{Runtime, HISTORY_CAP};
use crate::api::{WorkspaceExecParams, WorkspaceExecResult};
use crate::guest;
use crate::progress::{Event, Phase, Progress};
use crate::secrets::Redactor;
use crate::{interrupt, Error, Hint, Manager};

impl Manager {
    /// Runs a command in a started workspace and records it.
    pub fn workspace_exec(
        &self,
        p: WorkspaceExecParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceExecResult, Error> {
        guest::validate_exec(&p.command, &p.cwd, p.timeout_seconds)?;
        self.stop_idle()?;
        // Held while the command runs, so a fork waits for it; taken before
        // the record is read, so a command that waited for a fork reads the
        // guest as the fork left it.
        let id = self.store()?.resolve(&p.workspace_id)?.workspace_id;
        let _running = super::inflight::CommandsLock::shared(&self.workspace_dir(&id));
        let r = self.load(&id)?;
        let vm = require_started(&r, &p.workspace_id, "exec")?;
        let _note = {
            let id = r.workspace_id.clone();
            interrupt::on_interrupt(move || {
                format!("the command was stopped; workspace {id} keeps running")
            })
        };
        progress.event(Event::Phase {
            phase: Phase::Execute,
            id: &r.workspace_id,
            environment: &r.environment,
        });
        // A JSON result needs everything; the history keeps a capped copy.
        let keep = if progress.capture_output() {
            usize::MAX
        } else {
            HISTORY_CAP
        };
        let (env, redactor) = self.secret_env(&r, &p.secret_env)?;
        let out = match self.guest_exec(
            &vm,
            &p.command,
            &p.cwd,
            p.timeout_seconds,
            keep,
            env,
            &redactor,
            progress,
        ) {
            Ok(out) => out,
            Err(e) => return Err(self.explain_failure(&r, &p.workspace_id, &vm, e)),
        };
        let command = redactor.redact_str(&p.command.display());
        let capped = |b: &[u8]| guest::text(&b[..b.len().min(HISTORY_CAP)]).0;
        let duration_ms = out.duration.as_millis() as u64;
        let sequence = self.store()?.record_command(
            &r.workspace_id,
            &command,
            &p.cwd,
            out.exit_code,
            duration_ms,
            &capped(&out.stdout),
            &capped(&out.stderr),
            crate::now(),
        )?;
        Ok(WorkspaceExecResult {
            workspace_id: r.workspace_id.clone(),
            environment: r.environment.clone(),
            environment_version: r.environment_version.clone(),
            sequence,
            command,
            cwd: p.cwd,
            output: out.public(progress.capture_output()),
            duration_ms,
            execution_mode: "guest_vsock".into(),
        })
    }

    /// The environment `secret_env` asks for (secret name → variable
    /// name, the same name when empty) and a redactor for every secret of
    /// the workspace.
    pub(crate) fn secret_env(
        &self,
        r: &WorkspaceRecord,
        mapping: &std::collections::BTreeMap<String, String>,
    ) -> Result<(Vec<(String, String)>, Redactor), Error> {
        let infos = crate::secrets::infos_of(r);
        if infos.is_empty() && mapping.is_empty() {
            return Ok((Vec::new(), Redactor::default()));
        }
        let values = crate::secrets::values(&self.workspace_dir(&r.workspace_id), &infos)?;
        let mut env: Vec<(String, String)> = Vec::new();
        for (secret, var) in mapping {
            let var = if var.is_empty() { secret } else { var };
            crate::secrets::validate_name("environment variable name", var)?;
            let Some(value) = values.get(secret) else {
                return Err(Error::InvalidArgument(format!(
                    "secret_env references unknown workspace secret '{secret}'"
                )));
            };
            if env.iter().any(|(v, _)| v == var) {
                return Err(Error::InvalidArgument(format!(
                    "secret_env sets the environment variable '{var}' more than once"
                )));
            }
            env.push((var.clone(), value.clone()));
        }
        Ok((env, Redactor::new(values.values().map(String::as_str))))
    }

    /// Redacts the values of the workspace's secrets.
    pub(crate) fn redactor(&self, r: &WorkspaceRecord) -> Result<Redactor, Error> {
        Ok(self.secret_env(r, &Default::default())?.1)
    }

    /// A guest's error with the workspace's secret values taken out: the
    /// agent and the console may echo what a command was given.
    fn redact_error(&self, r: &WorkspaceRecord, e: Error) -> Error {
        let Ok(red) = self.redactor(r) else { return e };
        match e {
            Error::Vmm(VmmError::Remote(mut remote)) => {
                remote.message = red.redact_str(&remote.message);
                Error::Vmm(VmmError::Remote(remote))
            }
            Error::Vmm(VmmError::Agent(m)) => Error::Vmm(VmmError::Agent(red.redact_str(&m))),
            Error::Vmm(VmmError::GuestLost { reason, console }) => {
                Error::Vmm(VmmError::GuestLost {
                    reason: red.redact_str(&reason),
                    console: red.redact_str(&console),
                })
            }
            other => other,
        }
    }

    /// What a failed guest call means for this workspace. A guest lost
    /// mid-command: deleted or stopped by someone else is not a crash; a
    /// real crash leaves the record stopped with the reason. An agent too
    /// old for the request: restarting boots this pyro's agent.
    pub(crate) fn explain_failure(
        &self,
        r: &WorkspaceRecord,
        asked_as: &str,
        vm: &VmHandle,
        e: Error,
    ) -> Error {
        let e = self.redact_error(r, e);
        if e.code() == crate::ErrorCode::Unsupported {
            return e.with_hint(Hint::RestartForNewAgent {
                workspace: asked_as.to_string(),
            });
        }
        if !matches!(e, Error::Vmm(VmmError::GuestLost { .. })) {
            return e;
        }
        let id = &r.workspace_id;
        let Ok(store) = self.store() else { return e };
        match store.resolve(id) {
            Err(StoreError::NotFound { .. }) => Error::InvalidState {
                message: format!("workspace {id} was deleted while the command was running"),
                hint: None,
            },
            Ok(now) if Runtime::of(&now).vm.as_ref() != Some(vm) => Error::InvalidState {
                message: format!(
                    "workspace {id} was stopped while the command was running (it is now {})",
                    now.state.as_str()
                ),
                hint: None,
            },
            _ => {
                let _ = self.load(id);
                e
            }
        }
    }
}

/// The guest of a started workspace, or an error saying how to get one.
pub(crate) fn require_started(
    r: &WorkspaceRecord,
    asked_as: &str,
    op: &str,
) -> Result<VmHandle, Error> {
    match (r.state, Runtime::of(r).vm) {
        (WorkspaceState::Started, Some(vm)) => Ok(vm),
        (WorkspaceState::Creating, _) => Err(Error::InvalidState {
            message: format!(
                "workspace {} is still being created; {op} needs it started",
                r.workspace_id
            ),
            hint: None,
        }),
        (WorkspaceState::Failed, _) => Err(Error::InvalidState {
            message: format!(
                "workspace {} failed to be created; {op} needs a started workspace",
                r.workspace_id
            ),
            hint: Some(Hint::DeleteWorkspace {
                workspace: asked_as.to_string(),
            }),
        }),
        (state, _) => Err(Error::InvalidState {
            message: format!(
                "workspace {} is {} and must be started before {op}",
                r.workspace_id,
                state.as_str()
            ),
            hint: Some(Hint::StartWorkspace {
                workspace: asked_as.to_string(),
            }),
        }),
    }
}
