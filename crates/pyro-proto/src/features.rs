//! Feature names: what a peer can do, within one major protocol version.
//!
//! Every [`crate::Request`] belongs to exactly one feature
//! ([`crate::Request::feature`]). A new operation, or a new way of using an
//! old one, gets a new name here and is added to [`ALL`]; the major
//! [`crate::PROTOCOL_VERSION`] stays the same, so agents already deployed
//! keep talking to a newer host, which checks
//! [`crate::Hello::supports`] before using anything not in [`BASE`].

/// [`crate::Request::Exec`] with output as frames.
pub const EXEC: &str = "exec";
/// [`crate::Request::AttachOutput`], and an `Exec` with an `output_token`.
pub const DIRECT_OUTPUT: &str = "direct_output";
/// [`crate::Request::KillGroup`] on a direct-output exec's connection.
pub const KILL_GROUP: &str = "kill_group";
/// [`crate::Request::Extract`] followed by `Data` frames.
pub const EXTRACT: &str = "extract";
/// [`crate::Request::Shutdown`].
pub const SHUTDOWN: &str = "shutdown";
/// [`crate::Request::Ping`].
pub const PING: &str = "ping";
/// [`crate::Request::RawEcho`] and [`crate::Request::RawSource`].
pub const RAW_BENCH: &str = "raw_bench";

/// [`crate::Request::ListFiles`], [`crate::Request::ReadFile`] and
/// [`crate::Request::WriteFile`].
pub const FILES: &str = "files";
/// [`crate::Request::ApplyPatch`].
pub const PATCH: &str = "patch";
/// [`crate::Request::Archive`].
pub const ARCHIVE: &str = "archive";

/// [`crate::Request::InstallSecret`].
pub const SECRETS: &str = "secrets";

/// [`crate::Request::ServiceStart`] and the other service requests.
pub const SERVICES: &str = "services";

/// [`crate::Request::ShellOpen`] and the other shell requests.
pub const SHELLS: &str = "shells";
/// `TcpConnect`: a connection to a guest TCP port over vsock (published
/// ports).
pub const TCP_CONNECT: &str = "tcp_connect";
/// `SetIdentity`: reseed, clock, machine-id and hostname (templates).
pub const IDENTITY: &str = "identity";

/// What every protocol-1 agent has always had, including those that predate
/// feature lists: a `Hello` without `features` (or with an empty list) means
/// exactly these.
pub const BASE: &[&str] = &[
    EXEC,
    DIRECT_OUTPUT,
    KILL_GROUP,
    EXTRACT,
    SHUTDOWN,
    PING,
    RAW_BENCH,
];

/// Everything this build understands: what its agent serves and advertises
/// (unless some are disabled), and what its host advertises.
pub const ALL: &[&str] = &[
    EXEC,
    DIRECT_OUTPUT,
    KILL_GROUP,
    EXTRACT,
    SHUTDOWN,
    PING,
    RAW_BENCH,
    FILES,
    PATCH,
    ARCHIVE,
    SECRETS,
    SERVICES,
    SHELLS,
    TCP_CONNECT,
    IDENTITY,
];
