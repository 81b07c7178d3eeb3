//! Where pyro keeps things, and the knobs users turn with variables.
//!
//! | variable | meaning |
//! |---|---|
//! | `PYRO_STATE_DIR` | state (runtime dirs of VMs); default `$XDG_STATE_HOME/pyro`, else `~/.local/state/pyro` |
//! | `PYRO_CACHE_DIR` | environments and probe results; default `$XDG_CACHE_HOME/pyro`, else `~/.cache/pyro` |
//! | `PYRO_AGENT_PATH` | the static guest agent; default `pyro-agent` beside the `pyro` binary |
//! | `PYRO_DEBIAN_MIRROR` | mirror for `env pull` (URI, sources line or file); default: mmdebstrap's |
//! | `PYRO_ACCEL` | `kvm` or `tcg`, skipping the probe |
//! | `PYRO_TEST_AGENT_DISABLE_FEATURES` | tests only: comma-separated protocol features the agent of guests booted now pretends not to know (simulates a guest booted by an older pyro) |

use std::path::{Path, PathBuf};

use pyro_vmm::Accel;

use crate::Error;

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory (mode 0700).
    pub state_dir: PathBuf,
    /// Cache directory.
    pub cache_dir: PathBuf,
    /// Guest agent binary.
    pub agent_path: PathBuf,
    /// Mirror for environment builds.
    pub mirror: Option<String>,
    /// Forced accelerator.
    pub accel: Option<Accel>,
    /// Tests only: protocol features new guests' agents leave out.
    pub agent_disable_features: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home() -> PathBuf {
    var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

impl Config {
    /// Reads the environment.
    pub fn from_env() -> Result<Config, Error> {
        let state_dir = var("PYRO_STATE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_STATE_HOME").map(|d| Path::new(&d).join("pyro")))
            .unwrap_or_else(|| home().join(".local/state/pyro"));
        let cache_dir = var("PYRO_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| Path::new(&d).join("pyro")))
            .unwrap_or_else(|| home().join(".cache/pyro"));
        let accel = match var("PYRO_ACCEL").as_deref() {
            None => None,
            Some("kvm") => Some(Accel::Kvm),
            Some("tcg") => Some(Accel::Tcg),
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "PYRO_ACCEL must be kvm or tcg, not '{other}'"
                )))
            }
        };
        Ok(Config {
            state_dir: absolute(state_dir),
            cache_dir: absolute(cache_dir),
            agent_path: var("PYRO_AGENT_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(default_agent_path),
            mirror: var("PYRO_DEBIAN_MIRROR"),
            accel,
            agent_disable_features: var("PYRO_TEST_AGENT_DISABLE_FEATURES"),
        })
    }

    /// A configuration under a scratch directory, for unit tests.
    #[doc(hidden)]
    pub fn for_tests() -> Config {
        let root = std::env::temp_dir().join(format!("pyro-core-test-{}", std::process::id()));
        Config {
            state_dir: root.join("state"),
            cache_dir: root.join("cache"),
            agent_path: root.join("pyro-agent"),
            mirror: None,
            accel: None,
            agent_disable_features: None,
        }
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

/// In a cargo target dir, the static build under
/// `x86_64-unknown-linux-gnu/release` (the plain `target/*/pyro-agent` is
/// dynamically linked and cannot be PID 1); otherwise `pyro-agent` beside
/// the running binary.
fn default_agent_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    let beside = dir.join("pyro-agent");
    let in_target = dir
        .parent()
        .filter(|t| t.join("CACHEDIR.TAG").is_file() || dir.ends_with("deps"));
    let target = match in_target {
        Some(t) if dir.ends_with("deps") => t.parent().unwrap_or(t),
        Some(t) => t,
        None => return beside,
    };
    let static_agent = target.join("x86_64-unknown-linux-gnu/release/pyro-agent");
    if static_agent.is_file() {
        static_agent
    } else {
        beside
    }
}
