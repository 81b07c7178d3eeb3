//! Params and results of the operations on a workspace's contents: sync,
//! files, patch, diff, export, snapshots, reset and the stopped disk.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{defaults, WorkspaceInfo};

/// Largest `max_bytes` of a file or disk read, and largest text written by
/// `file write` (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Default `max_bytes` of a read.
pub const DEFAULT_READ_BYTES: u64 = 65536;

fn default_read_bytes() -> u64 {
    DEFAULT_READ_BYTES
}

fn baseline() -> String {
    pyro_store::BASELINE.into()
}

/// What a path in a workspace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// `workspace_sync_push` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSyncPushParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// Host directory, or .tar/.tar.gz/.tgz archive, to copy in. Relative
    /// paths resolve against the caller's working directory.
    pub source_path: PathBuf,
    /// Directory in the workspace to copy into (relative paths are under
    /// /workspace). Files there are overwritten; nothing is deleted.
    #[serde(default = "defaults::workspace_path")]
    pub dest: String,
}

/// What a sync push copied.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceSync {
    /// `directory` or `archive`.
    pub mode: String,
    /// The host path it came from.
    pub source_path: PathBuf,
    /// Where it went.
    pub destination: String,
    /// Entries copied.
    pub entry_count: u64,
    /// File bytes copied.
    pub bytes_written: u64,
}

/// `workspace_sync_push` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceSyncResult {
    /// Workspace.
    pub workspace_id: String,
    /// Always `guest_vsock`.
    pub execution_mode: String,
    /// What was copied.
    pub workspace_sync: WorkspaceSync,
}

/// `workspace_file_list` params (also `workspace_disk_list`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFileListParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// Directory or file to list: relative to /workspace, or absolute
    /// under it.
    #[serde(default = "defaults::workspace_path")]
    pub path: String,
    /// List everything below, not only the directory's children.
    #[serde(default)]
    pub recursive: bool,
}

/// One listed path.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FileEntry {
    /// Absolute guest path.
    pub path: String,
    /// What it is.
    pub artifact_type: ArtifactType,
    /// Size in bytes (0 for directories).
    pub size_bytes: u64,
    /// A symlink's target (never followed).
    pub link_target: Option<String>,
    /// Permission bits, e.g. 420 (0644).
    pub mode: u32,
}

/// `workspace_file_list` result (also `workspace_disk_list`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceFileList {
    /// Workspace.
    pub workspace_id: String,
    /// The listed path (absolute).
    pub path: String,
    /// Whether it was listed recursively.
    pub recursive: bool,
    /// Entries sorted by path.
    pub entries: Vec<FileEntry>,
    /// `guest_vsock` for a running guest, `host_disk` for a stopped disk.
    pub execution_mode: String,
}

/// `workspace_file_read` params (also `workspace_disk_read`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFileReadParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The file: relative to /workspace, or absolute under it.
    pub path: String,
    /// Read at most this many bytes (1-1048576); a larger file is read in
    /// part and `truncated` says so.
    #[serde(default = "default_read_bytes")]
    pub max_bytes: u64,
}

/// How `content` is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentEncoding {
    /// The bytes are UTF-8 text, given as is.
    Utf8,
    /// The bytes are not text (a NUL byte or invalid UTF-8): base64.
    Base64,
}

/// `workspace_file_read` result (also `workspace_disk_read`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceFileRead {
    /// Workspace.
    pub workspace_id: String,
    /// The file (absolute).
    pub path: String,
    /// Its full size.
    pub size_bytes: u64,
    /// The limit asked for.
    pub max_bytes: u64,
    /// The bytes read: text as is, anything else base64 (see `encoding`).
    pub content: String,
    /// `utf8` or `base64`.
    pub encoding: ContentEncoding,
    /// Whether the content is not text.
    pub binary: bool,
    /// Whether the file is longer than what was read.
    pub truncated: bool,
    /// `guest_vsock` or `host_disk`.
    pub execution_mode: String,
}

impl WorkspaceFileRead {
    /// The bytes read, decoded from `content`.
    pub fn bytes(&self) -> Vec<u8> {
        match self.encoding {
            ContentEncoding::Utf8 => self.content.as_bytes().to_vec(),
            ContentEncoding::Base64 => decode_base64(&self.content),
        }
    }
}

/// Decodes standard base64 (what `content` holds for binary files);
/// anything outside the alphabet is skipped.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// `workspace_file_write` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFileWriteParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The file: relative to /workspace, or absolute under it. Missing
    /// parent directories are created.
    pub path: String,
    /// The new content (UTF-8, at most 1 MiB). Replaces the file
    /// atomically, keeping its mode; a new file gets 0644.
    pub text: String,
}

/// `workspace_file_write` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceFileWrite {
    /// Workspace.
    pub workspace_id: String,
    /// The file (absolute).
    pub path: String,
    /// Its size now.
    pub size_bytes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Its mode, e.g. 420 (0644).
    pub mode: u32,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `workspace_patch_apply` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatchApplyParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// A unified diff (as `diff -u` or `git diff` write it) with paths
    /// relative to /workspace; it may add, modify and delete several
    /// files. Applied all or nothing.
    pub patch: String,
}

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// It is new.
    Added,
    /// Its content (or mode, or link target) changed.
    Modified,
    /// It is gone.
    Deleted,
    /// It is now another kind of thing (file ↔ directory ↔ symlink).
    TypeChanged,
}

/// Counts of a patch.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct PatchSummary {
    /// Files touched.
    pub total: u64,
    /// Files added.
    pub added: u64,
    /// Files modified.
    pub modified: u64,
    /// Files deleted.
    pub deleted: u64,
}

/// One file a patch changed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PatchEntry {
    /// Absolute guest path.
    pub path: String,
    /// What happened to it.
    pub status: ChangeStatus,
}

/// `workspace_patch_apply` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspacePatchResult {
    /// Workspace.
    pub workspace_id: String,
    /// Whether any file changed.
    pub changed: bool,
    /// Counts.
    pub summary: PatchSummary,
    /// Files changed, sorted by path.
    pub entries: Vec<PatchEntry>,
    /// The patch as given.
    pub patch: String,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// Counts of a diff.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct DiffSummary {
    /// Paths changed.
    pub total: u64,
    /// Added.
    pub added: u64,
    /// Modified.
    pub modified: u64,
    /// Deleted.
    pub deleted: u64,
    /// Changed kind.
    pub type_changed: u64,
    /// Changes shown as a text patch.
    pub text_patched: u64,
    /// Changes that are not text (binary files, large files, symlinks,
    /// mode-only changes): listed without a patch.
    pub non_text: u64,
}

/// One changed path.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiffEntry {
    /// Path relative to /workspace (`src/app.py`).
    pub path: String,
    /// How it changed.
    pub status: ChangeStatus,
    /// What it is now (what it was, when deleted).
    pub artifact_type: ArtifactType,
    /// Unified diff of this file, when it is text on both sides.
    pub text_patch: Option<String>,
}

/// `workspace_diff` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceDiff {
    /// Workspace.
    pub workspace_id: String,
    /// Whether /workspace differs from the baseline.
    pub changed: bool,
    /// Counts.
    pub summary: DiffSummary,
    /// Changed paths, sorted.
    pub entries: Vec<DiffEntry>,
    /// All text patches, concatenated (applies with `patch -p1`).
    pub patch: String,
}

/// `workspace_export` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExportParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// File or directory to export: relative to /workspace, or absolute
    /// under it.
    pub path: String,
    /// Host path to create; must not exist (missing parents are created).
    pub output_path: PathBuf,
}

/// `workspace_export` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceExport {
    /// Workspace.
    pub workspace_id: String,
    /// The exported guest path (absolute).
    pub workspace_path: String,
    /// The host path written.
    pub output_path: PathBuf,
    /// What was exported.
    pub artifact_type: ArtifactType,
    /// Entries written.
    pub entry_count: u64,
    /// File bytes written.
    pub bytes_written: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// Params naming a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// 1-64 characters of `[A-Za-z0-9._-]`, starting with a letter or
    /// digit; `baseline` is the create-time snapshot.
    pub snapshot_name: String,
}

/// Baseline or named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// The create-time content of /workspace; cannot be deleted.
    Baseline,
    /// Taken by `snapshot create`.
    Named,
}

/// One snapshot.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SnapshotInfo {
    /// Workspace.
    pub workspace_id: String,
    /// Name.
    pub snapshot_name: String,
    /// Baseline or named.
    pub kind: SnapshotKind,
    /// When it was taken.
    pub created_at: f64,
    /// Entries it holds.
    pub entry_count: u64,
    /// File bytes it holds.
    pub bytes_written: u64,
    /// Whether it can be deleted (not the baseline).
    pub deletable: bool,
}

/// `snapshot_list` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SnapshotList {
    /// Workspace.
    pub workspace_id: String,
    /// How many.
    pub count: usize,
    /// The baseline first, then named snapshots newest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// `snapshot_delete` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SnapshotDeleted {
    /// Workspace.
    pub workspace_id: String,
    /// The snapshot.
    pub snapshot_name: String,
    /// Always true.
    pub deleted: bool,
}

/// `workspace_reset` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceResetParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// Snapshot to restore /workspace from.
    #[serde(default = "baseline")]
    pub snapshot: String,
}

/// What a reset restored.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceReset {
    /// The snapshot.
    pub snapshot_name: String,
    /// Its kind.
    pub kind: SnapshotKind,
    /// Where it was restored (`/workspace`).
    pub destination: String,
    /// Entries restored.
    pub entry_count: u64,
    /// File bytes restored.
    pub bytes_written: u64,
}

/// `workspace_reset` result: the workspace payload plus what was restored.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceResetResult {
    /// The workspace after the reset.
    #[serde(flatten)]
    pub workspace: WorkspaceInfo,
    /// What was restored.
    pub workspace_reset: WorkspaceReset,
}

/// `workspace_disk_export` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDiskExportParams {
    /// The workspace's id or name (it must be stopped).
    pub workspace_id: String,
    /// Host path of the raw ext4 image to create; must not exist.
    pub output_path: PathBuf,
}

/// `workspace_disk_export` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceDiskExport {
    /// Workspace.
    pub workspace_id: String,
    /// The image written.
    pub output_path: PathBuf,
    /// Always `ext4` (a raw image of the guest's root file system).
    pub disk_format: String,
    /// The image's size (sparse on disk).
    pub bytes_written: u64,
}
