//! The host's record of each service (the guest's agent runs them): its
//! state for counts, and an opaque record the Manager owns.

use rusqlite::params;

use crate::store::Store;
use crate::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

impl Store {
    /// Records (or replaces) service `name` of workspace `id`.
    pub fn put_service(
        &self,
        id: &str,
        name: &str,
        state: &str,
        record: &serde_json::Value,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO services (workspace_id, name, state, record) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (workspace_id, name) DO UPDATE SET state = ?3, record = ?4",
                params![id, name, state, record.to_string()],
            )?;
            Ok(())
        })
    }

    /// The service records of workspace `id`, by name.
    pub fn services(&self, id: &str) -> Result<Vec<(String, String, serde_json::Value)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, state, record FROM services WHERE workspace_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([id], |r| {
            let text: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// (running, total) services of workspace `id`.
    pub fn service_counts(&self, id: &str) -> Result<(u64, u64)> {
        let conn = self.conn();
        Ok(conn.query_row(
            "SELECT COALESCE(SUM(state = 'running'), 0), COUNT(*) FROM services \
             WHERE workspace_id = ?1",
            [id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }
}
