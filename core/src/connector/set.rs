//! The connectors of an installation, opened once and reopened when they change.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::local::LocalConnector;
use super::{
    ConnectorError, LOCAL_CONNECTOR_ID, LOCAL_CONNECTOR_NAME, LOCAL_CONNECTOR_TYPE, OpenConnector,
    OpenContext, registry,
};
use crate::storage::{self, StorageError};

/// One cached entry: what it was opened from (to notice changes) and the outcome.
struct Entry {
    source: storage::Connector,
    outcome: Result<OpenConnector, String>,
}

/// The connectors of an installation (Dex's `server.connectors` cache).
///
/// Connectors come from durable storage (config-file ones through the static overlay, API-created
/// ones from the database). Each is opened on first use and kept; it is opened again when its
/// stored record changes (an update through the API gives it a new `resource_version`, which is
/// how other replicas notice), and forgotten when it is deleted. A connector that fails to open
/// is reported once per version (a `warn` event with its id and the reason) and answers
/// [`ConnectorError::Unavailable`]; the others keep working. With `enablePasswordDB` the built-in
/// `local` connector (the password database) is always present and comes first.
pub struct ConnectorSet {
    ctx: OpenContext,
    local: Option<OpenConnector>,
    cache: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for ConnectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        f.debug_struct("ConnectorSet").field("local", &self.local.is_some()).field("cached", &ids).finish()
    }
}

impl ConnectorSet {
    /// A set over `ctx.storage`'s connectors, plus `local` when `enable_password_db` is set.
    pub fn new(ctx: OpenContext, enable_password_db: bool) -> Self {
        let local = enable_password_db.then(|| {
            let record = storage::Connector {
                id: LOCAL_CONNECTOR_ID.into(),
                r#type: LOCAL_CONNECTOR_TYPE.into(),
                name: LOCAL_CONNECTOR_NAME.into(),
                ..Default::default()
            };
            OpenConnector::new(&record, Arc::new(LocalConnector::new(ctx.storage.clone())))
        });
        Self { ctx, local, cache: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Nothing can be left half-updated by a panic (entries are replaced whole).
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The opened connector for `record`, reopening it if the record changed since it was
    /// opened.
    fn resolve(&self, record: storage::Connector) -> Result<OpenConnector, ConnectorError> {
        let mut cache = self.lock();
        if let Some(entry) = cache.get(&record.id)
            && entry.source == record
        {
            return entry.outcome.clone().map_err(|reason| unavailable(&record.id, reason));
        }
        let outcome = match registry::open(&record, &self.ctx) {
            Ok(c) => {
                tracing::debug!(connector_id = %record.id, version = %record.resource_version, "connector opened");
                Ok(c)
            }
            Err(e) => {
                tracing::warn!(connector_id = %record.id, error = %e, "connector could not be opened");
                Err(e.to_string())
            }
        };
        let id = record.id.clone();
        cache.insert(id.clone(), Entry { source: record, outcome: outcome.clone() });
        outcome.map_err(|reason| unavailable(&id, reason))
    }

    /// The connector with this id: [`ConnectorError::NotFound`] if there is none,
    /// [`ConnectorError::Unavailable`] if it cannot be opened. Reads the stored record each time
    /// (one lookup by key) so that changes made on other replicas take effect.
    pub async fn get(&self, id: &str) -> Result<OpenConnector, ConnectorError> {
        if id == LOCAL_CONNECTOR_ID
            && let Some(local) = &self.local
        {
            return Ok(local.clone());
        }
        match self.ctx.storage.get_connector(id).await {
            Ok(record) => self.resolve(record),
            Err(StorageError::NotFound) => {
                self.lock().remove(id);
                Err(ConnectorError::NotFound { id: id.to_owned() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The usable connectors as `(id, type, name)`, `local` first, then in storage order.
    /// Connectors that cannot be opened are left out (and reported in the log).
    pub async fn list(&self) -> Result<Vec<(String, String, String)>, ConnectorError> {
        Ok(self.list_open().await?.iter().map(summary).collect())
    }

    /// The usable connectors, opened, in the order of [`ConnectorSet::list`].
    pub async fn list_open(&self) -> Result<Vec<OpenConnector>, ConnectorError> {
        let records = self.ctx.storage.list_connectors().await?;
        let mut out = Vec::with_capacity(records.len() + 1);
        if let Some(local) = &self.local {
            out.push(local.clone());
        }
        let mut present = Vec::with_capacity(records.len());
        for record in records {
            if self.local.is_some() && record.id == LOCAL_CONNECTOR_ID {
                // Dex stores a `local` record itself; the built-in one stands for it.
                continue;
            }
            present.push(record.id.clone());
            if let Ok(c) = self.resolve(record) {
                out.push(c);
            }
        }
        self.lock().retain(|id, _| present.contains(id));
        Ok(out)
    }
}

fn summary(c: &OpenConnector) -> (String, String, String) {
    (c.id().to_owned(), c.connector_type().to_owned(), c.name().to_owned())
}

fn unavailable(id: &str, reason: String) -> ConnectorError {
    ConnectorError::Unavailable { id: id.to_owned(), reason }
}
