//! Schema migrations, applied in order at open. The index is the version.

/// Entry `i` upgrades the schema from version `i` to `i + 1`. Append to
/// change the schema; never edit an entry that has shipped, since files
/// written with it exist.
pub const MIGRATIONS: &[&str] = &[
    // 1: workspaces, labels, command history.
    "CREATE TABLE workspaces (
        workspace_id TEXT PRIMARY KEY,
        name TEXT UNIQUE,
        environment TEXT NOT NULL,
        environment_version TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('creating','started','stopped','failed')),
        vcpu_count INTEGER NOT NULL,
        mem_mib INTEGER NOT NULL,
        ttl_seconds INTEGER,
        network_policy TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_activity_at REAL NOT NULL,
        command_count INTEGER NOT NULL DEFAULT 0,
        last_command TEXT,
        last_error TEXT,
        runtime TEXT NOT NULL DEFAULT '{}',
        seed TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX workspaces_by_activity ON workspaces (last_activity_at DESC, created_at DESC, workspace_id);
    CREATE TABLE labels (
        workspace_id TEXT NOT NULL REFERENCES workspaces(workspace_id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (workspace_id, key)
    );
    CREATE INDEX labels_by_key_value ON labels (key, value);
    CREATE TABLE commands (
        workspace_id TEXT NOT NULL REFERENCES workspaces(workspace_id) ON DELETE CASCADE,
        sequence INTEGER NOT NULL,
        command TEXT NOT NULL,
        cwd TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (workspace_id, sequence)
    );",
    // 2: resets and snapshots.
    "ALTER TABLE workspaces ADD COLUMN reset_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE workspaces ADD COLUMN last_reset_at REAL;
    CREATE TABLE snapshots (
        workspace_id TEXT NOT NULL REFERENCES workspaces(workspace_id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('baseline','named')),
        created_at REAL NOT NULL,
        entry_count INTEGER NOT NULL,
        bytes_written INTEGER NOT NULL,
        PRIMARY KEY (workspace_id, name)
    );",
    // 3: secret descriptions (names and sources; values live in files).
    "ALTER TABLE workspaces ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';",
    // 4: services (the host's record of each; the guest's agent runs them).
    "CREATE TABLE services (
        workspace_id TEXT NOT NULL REFERENCES workspaces(workspace_id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (workspace_id, name)
    );",
];
