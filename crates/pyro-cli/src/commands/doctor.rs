//! `pyro doctor`.

use pyro_core::api::{DoctorParams, DoctorReport, ToolReport};
use pyro_core::{Manager, Quiet};

use crate::args::DoctorArgs;
use crate::exit::Exit;
use crate::printer::{yes_no, Printer};

fn tool(t: &ToolReport) -> String {
    match (&t.path, &t.version) {
        (Some(p), Some(v)) => format!("{v} ({})", p.display()),
        (Some(p), None) => format!("present ({})", p.display()),
        _ => "not installed".into(),
    }
}

fn boots(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not probed",
    }
}

pub fn run(manager: &Manager, a: &DoctorArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let params = DoctorParams {
        platform: a.platform.clone(),
        refresh: a.refresh,
    };
    let r = match manager.doctor(params, &mut Quiet) {
        Ok(r) => r,
        Err(e) => {
            printer.error(&e);
            return Exit::from(&e);
        }
    };
    if a.output.json {
        printer.json(&r);
    } else {
        human(printer, &r);
    }
    if r.runtime_ok {
        Exit::Success
    } else {
        Exit::Failure
    }
}

fn human(p: Printer, r: &DoctorReport) {
    p.line(&format!("Platform: {}", r.platform));
    p.line(&format!(
        "Runtime: {}",
        if r.runtime_ok { "PASS" } else { "FAIL" }
    ));
    let detail = r
        .kvm
        .detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    p.line(&format!(
        "KVM: exists={} readable={} writable={} boots={}{detail}",
        yes_no(r.kvm.exists),
        yes_no(r.kvm.readable),
        yes_no(r.kvm.writable),
        boots(r.kvm.boots)
    ));
    p.line(&format!(
        "Accelerator: {} ({})",
        r.accelerator.as_str(),
        r.accelerator_reason
    ));
    p.line(&format!("QEMU: {}", tool(&r.qemu)));
    p.line(&format!("qemu-img: {}", tool(&r.qemu_img)));
    p.line(&format!(
        "vhost-device-vsock: {}",
        tool(&r.vhost_device_vsock)
    ));
    p.line(&format!(
        "Firecracker: {} (usable=no: {})",
        tool(&r.firecracker.tool),
        r.firecracker.reason
    ));
    p.line(&format!(
        "vsock: transport={} kernel_vhost_vsock={}",
        r.vsock.transport.as_deref().unwrap_or("none"),
        yes_no(r.vsock.kernel_vhost_vsock)
    ));
    p.line(&format!(
        "Guest agent: {} ({})",
        r.agent.path.display(),
        match r.agent.static_binary {
            Some(true) => "present, static",
            Some(false) => "present, NOT usable",
            None => "missing",
        }
    ));
    p.line(&format!(
        "Environment cache: {}",
        r.environment_cache.dir.display()
    ));
    for e in &r.environment_cache.environments {
        let state = if e.installed {
            "installed"
        } else {
            "not installed"
        };
        p.line(&format!("  {} {} [{state}]", e.name, e.version));
    }
    let c = &r.capabilities;
    let why = c
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    p.line(&format!(
        "Capabilities: vm_boot={} guest_exec={} guest_network={}{why}",
        yes_no(c.vm_boot),
        yes_no(c.guest_exec),
        yes_no(c.guest_network)
    ));
    p.line(&format!(
        "Networking: mode={} enabled_by_default={} user_netdev={} egress={}{}",
        r.networking.mode,
        yes_no(r.networking.enabled_by_default),
        yes_no(r.networking.user_netdev_available),
        yes_no(r.networking.egress_available),
        r.networking
            .egress_reason
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default()
    ));
    p.line(&format!(
        "Templates: {} built={} dir={}{}",
        if r.templates.enabled { "on" } else { "off" },
        r.templates.count,
        r.templates.dir.display(),
        r.templates
            .reason
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default()
    ));
    p.line(&format!("State dir: {}", r.state_dir.display()));
    if !r.issues.is_empty() {
        p.line("Issues:");
        for i in &r.issues {
            p.line(&format!("- {i}"));
        }
    }
    if !r.warnings.is_empty() {
        p.line("Warnings:");
        for w in &r.warnings {
            p.line(&format!("- {w}"));
        }
    }
}
