//! `pyro_mcp._native`: the native half of the Python SDK.
//!
//! The Python package `pyro_mcp` (under `python/`) is a thin typed layer
//! over this module; this module is a thin layer over the same Rust code
//! every other surface runs:
//!
//! - [`Native`] owns one `pyro_core::Manager`. `call(op, params_json)` runs
//!   one operation of the operation API by name
//!   (`Manager::call_json`) with the GIL released and returns the result
//!   as JSON text, exactly what `pyro ... --json` prints. A failure raises
//!   [`NativeError`] with `(code, message, hint)`, the hint worded for
//!   Python (`Surface::Python`); the package maps codes to its exception
//!   classes. `mcp_serve` serves the MCP profiles on stdio in-process.
//! - [`cli_main`] runs the `pyro` command line in-process (crate
//!   pyro-cli): the wheel's `pyro` console script is the same CLI.
//! - [`schema`] is `pyro schema`'s document.
//!
//! Nothing here decides behaviour: no defaults, no validation, no field
//! names. Those live in pyro-core.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyro_core::{Config, ErrorCode, Manager, Quiet, Surface};

pyo3::create_exception!(
    _native,
    NativeError,
    PyException,
    "A failed operation: args are (code, message, hint); hint may be None."
);

// One `Native` is shared by every Python thread that uses its `Pyro`, and
// calls run with the GIL released, so several run at once.
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<Manager>();
};

fn raise(code: ErrorCode, message: String, hint: Option<String>) -> PyErr {
    NativeError::new_err((code.as_str(), message, hint))
}

fn raise_core(e: &pyro_core::Error) -> PyErr {
    let body = e.body(Surface::Python);
    raise(body.code, body.message, body.hint)
}

/// The configuration the CLI would use (`PYRO_*` variables), with what
/// the caller passed in place of the variables'.
fn config(
    state_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    agent_path: Option<PathBuf>,
) -> PyResult<Config> {
    let mut config = Config::from_env().map_err(|e| raise_core(&e))?;
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    if let Some(dir) = state_dir {
        config.state_dir = absolute(dir);
    }
    if let Some(dir) = cache_dir {
        config.cache_dir = absolute(dir);
    }
    if let Some(agent) = agent_path {
        config.agent_path = absolute(agent);
    }
    Ok(config)
}

/// One Manager (state and cache directories, the guest agent), shared by
/// every thread of the Python process that uses it.
#[pyclass(frozen, module = "pyro_mcp._native")]
struct Native {
    manager: Manager,
}

#[pymethods]
impl Native {
    /// A manager over `state_dir` and `cache_dir` with the guest agent at
    /// `agent_path` (each by default as the CLI finds it: `PYRO_STATE_DIR`,
    /// `PYRO_CACHE_DIR`, `PYRO_AGENT_PATH` and their fallbacks).
    #[new]
    #[pyo3(signature = (state_dir=None, cache_dir=None, agent_path=None))]
    fn new(
        state_dir: Option<PathBuf>,
        cache_dir: Option<PathBuf>,
        agent_path: Option<PathBuf>,
    ) -> PyResult<Self> {
        Ok(Native {
            manager: Manager::new(config(state_dir, cache_dir, agent_path)?),
        })
    }

    /// Runs operation `op` on JSON params; the result as JSON text.
    /// Releases the GIL for the whole operation.
    fn call(&self, py: Python<'_>, op: &str, params_json: &str) -> PyResult<String> {
        let manager = &self.manager;
        let result = py.detach(|| {
            let params = serde_json::from_str(params_json).map_err(|e| {
                pyro_core::Error::InvalidArgument(format!("invalid params for {op}: {e}"))
            })?;
            manager.call_json(op, params, &mut Quiet)
        });
        match result {
            Ok(value) => Ok(value.to_string()),
            Err(e) => Err(raise_core(&e)),
        }
    }

    /// The state directory in use.
    #[getter]
    fn state_dir(&self) -> PathBuf {
        self.manager.config().state_dir.clone()
    }

    /// The environment cache directory in use.
    #[getter]
    fn cache_dir(&self) -> PathBuf {
        self.manager.config().cache_dir.clone()
    }

    /// The guest agent binary in use.
    #[getter]
    fn agent_path(&self) -> PathBuf {
        self.manager.config().agent_path.clone()
    }

    /// Checks MCP serve options without serving: the profile name and the
    /// allowed host directories (which must exist).
    fn mcp_check(&self, profile: &str, allow_host_paths: Vec<PathBuf>) -> PyResult<()> {
        mcp_options(profile, allow_host_paths).map(|_| ())
    }

    /// Serves MCP on this process's stdin/stdout until stdin closes, with
    /// this manager's configuration (as `pyro mcp serve`). The GIL is
    /// released while serving; a KeyboardInterrupt (SIGINT in the main
    /// thread) stops waiting, cleans up the calls in flight as an
    /// interrupted CLI does, and is raised.
    fn mcp_serve(
        &self,
        py: Python<'_>,
        profile: &str,
        allow_host_paths: Vec<PathBuf>,
    ) -> PyResult<()> {
        let opts = mcp_options(profile, allow_host_paths)?;
        let manager = Manager::new(self.manager.config().clone());
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("mcp-serve".into())
            .spawn(move || {
                let _ = tx.send(pyro_mcp::serve_stdio(manager, opts));
            })
            .map_err(|e| {
                raise(
                    ErrorCode::IoError,
                    format!("starting the MCP server thread: {e}"),
                    None,
                )
            })?;
        let mut rx = rx;
        loop {
            // The receiver is not Sync: it travels into the GIL-free closure
            // and back.
            let (back, got) = py.detach(move || {
                let got = rx.recv_timeout(Duration::from_millis(200));
                (rx, got)
            });
            rx = back;
            match got {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(message)) => return Err(raise(ErrorCode::IoError, message, None)),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(raise(
                        ErrorCode::IoError,
                        "the MCP server thread ended without a result".into(),
                        None,
                    ))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals() {
                        let what = pyro_core::interrupt::handle();
                        eprintln!("pyro mcp: {what}");
                        return Err(interrupt);
                    }
                }
            }
        }
    }
}

fn mcp_options(profile: &str, allow_host_paths: Vec<PathBuf>) -> PyResult<pyro_mcp::ServeOptions> {
    let usage = |message: String| raise(ErrorCode::InvalidArgument, message, None);
    let profile = profile.parse::<pyro_mcp::Profile>().map_err(usage)?;
    let cwd = std::env::current_dir().map_err(|e| {
        raise(
            ErrorCode::IoError,
            format!("the working directory: {e}"),
            None,
        )
    })?;
    pyro_mcp::paths::HostPaths::new(&cwd, &allow_host_paths).map_err(usage)?;
    Ok(pyro_mcp::ServeOptions {
        profile,
        allowed_host_paths: allow_host_paths,
    })
}

/// Runs the `pyro` command line (`argv[0]` is the program name) in this
/// process and returns its exit status. For the `pyro` console script
/// only: it takes over the process's SIGINT/SIGTERM/SIGHUP handling (a
/// signal cleans up and exits the process, as the `pyro` binary does), so
/// call it once, before any other thread starts.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<Vec<u8>>) -> u8 {
    let raw: Vec<OsString> = argv.into_iter().map(OsString::from_vec).collect();
    py.detach(|| pyro_cli::run(raw))
}

/// The machine-readable description of the operation API (`pyro schema`),
/// as JSON text.
#[pyfunction]
fn schema() -> String {
    pyro_core::api::schema_document().to_string()
}

/// The native module of the pyro Python SDK.
#[pymodule(name = "_native")]
mod native {
    #[pymodule_export]
    use super::cli_main;
    #[pymodule_export]
    use super::schema;
    #[pymodule_export]
    use super::Native;
    #[pymodule_export]
    use super::NativeError;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
