//! Reading and relabelling workspaces: list, status, update, logs.

use pyro_store::{LabelFilter, ListQuery, NameChange};

use super::info;
use crate::api::{
    WorkspaceInfo, WorkspaceList, WorkspaceListParams, WorkspaceLogs, WorkspaceRef,
    WorkspaceUpdateParams,
};
use crate::progress::Progress;
use crate::{Error, Manager};

impl Manager {
    /// Workspaces matching a query, exactly: records whose guests died
    /// behind pyro's back are reconciled first (process checks only, no
    /// guest round trips), so `state` and `limit` filter the truth.
    pub fn workspace_list(
        &self,
        p: WorkspaceListParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceList, Error> {
        let labels = p
            .labels
            .iter()
            .map(|l| LabelFilter::parse(l))
            .collect::<Result<Vec<_>, _>>()?;
        let query = ListQuery {
            labels,
            name: p.name,
            state: p.state.map(|s| s.to_store()),
            limit: p.limit,
        };
        self.reconcile_all()?;
        let workspaces: Vec<_> = self
            .store()?
            .list(&query)?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(WorkspaceList {
            count: workspaces.len(),
            workspaces,
        })
    }

    /// One workspace, as observed. Does not count as activity.
    pub fn workspace_status(
        &self,
        p: WorkspaceRef,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        Ok(info(&self.load(&p.workspace_id)?))
    }

    /// Renames and relabels; works in any state.
    pub fn workspace_update(
        &self,
        p: WorkspaceUpdateParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        let name = match (p.name, p.clear_name) {
            (Some(_), true) => {
                return Err(Error::InvalidArgument(
                    "name and clear_name cannot be used together".into(),
                ))
            }
            (Some(n), false) => NameChange::Set(n),
            (None, true) => NameChange::Clear,
            (None, false) => NameChange::Keep,
        };
        for key in p.labels.keys() {
            if p.clear_labels.contains(key) {
                return Err(Error::InvalidArgument(format!(
                    "label '{key}' cannot be both set and cleared in one update"
                )));
            }
        }
        let store = self.store()?;
        let r = store.update_metadata(
            &p.workspace_id,
            name,
            p.labels,
            p.clear_labels,
            crate::now(),
        )?;
        Ok(info(&self.load(&r.workspace_id)?))
    }

    /// Command history. Read-only.
    pub fn workspace_logs(
        &self,
        p: WorkspaceRef,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceLogs, Error> {
        let store = self.store()?;
        let r = store.resolve(&p.workspace_id)?;
        let entries: Vec<_> = store
            .commands(&r.workspace_id)?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(WorkspaceLogs {
            workspace_id: r.workspace_id,
            count: entries.len(),
            entries,
        })
    }
}
