//! Read-only overlay of the config file's static clients, passwords and connectors.
//!
//! As Dex's `storage/static.go`: reads merge the static objects over the stored ones (a static
//! object wins when both have the same id), and creating, updating or deleting an object whose
//! id is static fails with [`StorageError::ReadOnly`], without touching the wrapped storage.
//! Password emails are compared case-insensitively. Everything else is delegated unchanged.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::*;

/// Durable storage with the config file's objects laid over it.
#[derive(Debug)]
pub struct StaticOverlay {
    inner: Arc<dyn DurableStorage>,
    clients: Vec<Client>,
    passwords: Vec<Password>,
    connectors: Vec<Connector>,
}

fn read_only(kind: &str, id: &str) -> StorageError {
    StorageError::ReadOnly(format!("{kind} {id:?}"))
}

/// Static objects first in config order, then the stored ones whose key is not static.
fn merge<T>(statics: &[T], stored: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T>
where
    T: Clone,
{
    let static_keys: HashSet<String> = statics.iter().map(&key).collect();
    let mut out: Vec<T> = statics.to_vec();
    out.extend(stored.into_iter().filter(|item| !static_keys.contains(&key(item))));
    out
}

impl StaticOverlay {
    /// Lays `clients`, `passwords` and `connectors` over `inner`. Password emails are
    /// lower-cased; when the config lists an id twice, the first entry is kept.
    pub fn new(
        inner: Arc<dyn DurableStorage>,
        clients: Vec<Client>,
        passwords: Vec<Password>,
        connectors: Vec<Connector>,
    ) -> Self {
        fn dedup<T>(items: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T> {
            let mut seen = HashSet::new();
            items.into_iter().filter(|item| seen.insert(key(item))).collect()
        }
        let passwords = passwords
            .into_iter()
            .map(|mut p| {
                p.email = p.email.to_lowercase();
                p
            })
            .collect();
        Self {
            inner,
            clients: dedup(clients, |c| c.id.clone()),
            passwords: dedup(passwords, |p| p.email.clone()),
            connectors: dedup(connectors, |c| c.id.clone()),
        }
    }

    fn static_client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    fn static_password(&self, email: &str) -> Option<&Password> {
        let email = email.to_lowercase();
        self.passwords.iter().find(|p| p.email == email)
    }

    fn static_connector(&self, id: &str) -> Option<&Connector> {
        self.connectors.iter().find(|c| c.id == id)
    }

    /// Whether `id` is a static client.
    pub fn is_static_client(&self, id: &str) -> bool {
        self.static_client(id).is_some()
    }

    /// Whether `email` (any case) is a static password.
    pub fn is_static_password(&self, email: &str) -> bool {
        self.static_password(email).is_some()
    }

    /// Whether `id` is a static connector.
    pub fn is_static_connector(&self, id: &str) -> bool {
        self.static_connector(id).is_some()
    }
}

#[async_trait]
impl DurableStorage for StaticOverlay {
    async fn create_client(&self, client: Client) -> Result<()> {
        if self.is_static_client(&client.id) {
            return Err(read_only("client", &client.id));
        }
        self.inner.create_client(client).await
    }
    async fn get_client(&self, id: &str) -> Result<Client> {
        match self.static_client(id) {
            Some(c) => Ok(c.clone()),
            None => self.inner.get_client(id).await,
        }
    }
    async fn list_clients(&self) -> Result<Vec<Client>> {
        let stored = self.inner.list_clients().await?;
        Ok(merge(&self.clients, stored, |c| c.id.clone()))
    }
    async fn update_client(&self, id: &str, updater: Updater<'_, Client>) -> Result<Client> {
        if self.is_static_client(id) {
            return Err(read_only("client", id));
        }
        self.inner.update_client(id, updater).await
    }
    async fn delete_client(&self, id: &str) -> Result<()> {
        if self.is_static_client(id) {
            return Err(read_only("client", id));
        }
        self.inner.delete_client(id).await
    }

    async fn create_password(&self, password: Password) -> Result<()> {
        if self.is_static_password(&password.email) {
            return Err(read_only("password", &password.email.to_lowercase()));
        }
        self.inner.create_password(password).await
    }
    async fn get_password(&self, email: &str) -> Result<Password> {
        match self.static_password(email) {
            Some(p) => Ok(p.clone()),
            None => self.inner.get_password(email).await,
        }
    }
    async fn list_passwords(&self) -> Result<Vec<Password>> {
        let stored = self.inner.list_passwords().await?;
        Ok(merge(&self.passwords, stored, |p| p.email.to_lowercase()))
    }
    async fn update_password(&self, email: &str, updater: Updater<'_, Password>) -> Result<Password> {
        if self.is_static_password(email) {
            return Err(read_only("password", &email.to_lowercase()));
        }
        self.inner.update_password(email, updater).await
    }
    async fn delete_password(&self, email: &str) -> Result<()> {
        if self.is_static_password(email) {
            return Err(read_only("password", &email.to_lowercase()));
        }
        self.inner.delete_password(email).await
    }

    async fn create_connector(&self, connector: Connector) -> Result<()> {
        if self.is_static_connector(&connector.id) {
            return Err(read_only("connector", &connector.id));
        }
        self.inner.create_connector(connector).await
    }
    async fn get_connector(&self, id: &str) -> Result<Connector> {
        match self.static_connector(id) {
            Some(c) => Ok(c.clone()),
            None => self.inner.get_connector(id).await,
        }
    }
    async fn list_connectors(&self) -> Result<Vec<Connector>> {
        let stored = self.inner.list_connectors().await?;
        Ok(merge(&self.connectors, stored, |c| c.id.clone()))
    }
    async fn update_connector(&self, id: &str, updater: Updater<'_, Connector>) -> Result<Connector> {
        if self.is_static_connector(id) {
            return Err(read_only("connector", id));
        }
        self.inner.update_connector(id, updater).await
    }
    async fn delete_connector(&self, id: &str) -> Result<()> {
        if self.is_static_connector(id) {
            return Err(read_only("connector", id));
        }
        self.inner.delete_connector(id).await
    }

    async fn get_keys(&self) -> Result<Keys> {
        self.inner.get_keys().await
    }
    async fn create_keys(&self, keys: Keys) -> Result<()> {
        self.inner.create_keys(keys).await
    }
    async fn update_keys(&self, updater: Updater<'_, Keys>) -> Result<Keys> {
        self.inner.update_keys(updater).await
    }

    async fn create_refresh(&self, token: RefreshToken) -> Result<()> {
        self.inner.create_refresh(token).await
    }
    async fn get_refresh(&self, id: &str) -> Result<RefreshToken> {
        self.inner.get_refresh(id).await
    }
    async fn list_refresh_tokens(&self) -> Result<Vec<RefreshToken>> {
        self.inner.list_refresh_tokens().await
    }
    async fn update_refresh(&self, id: &str, updater: Updater<'_, RefreshToken>) -> Result<RefreshToken> {
        self.inner.update_refresh(id, updater).await
    }
    async fn update_refresh_seen(
        &self,
        seen: &RefreshToken,
        updater: Updater<'_, RefreshToken>,
    ) -> Result<RefreshToken> {
        self.inner.update_refresh_seen(seen, updater).await
    }
    async fn delete_refresh(&self, id: &str) -> Result<()> {
        self.inner.delete_refresh(id).await
    }

    async fn create_offline_sessions(&self, sessions: OfflineSessions) -> Result<()> {
        self.inner.create_offline_sessions(sessions).await
    }
    async fn get_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<OfflineSessions> {
        self.inner.get_offline_sessions(user_id, conn_id).await
    }
    async fn update_offline_sessions(
        &self,
        user_id: &str,
        conn_id: &str,
        updater: Updater<'_, OfflineSessions>,
    ) -> Result<OfflineSessions> {
        self.inner.update_offline_sessions(user_id, conn_id, updater).await
    }
    async fn delete_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<()> {
        self.inner.delete_offline_sessions(user_id, conn_id).await
    }

    async fn health_check(&self) -> Result<()> {
        self.inner.health_check().await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStorage;
    use super::*;

    fn client(id: &str, name: &str) -> Client {
        Client { id: id.into(), name: name.into(), ..Client::default() }
    }

    fn password(email: &str, user_id: &str) -> Password {
        Password { email: email.into(), user_id: user_id.into(), hash: b"h".to_vec(), ..Password::default() }
    }

    fn connector(id: &str, name: &str) -> Connector {
        Connector { id: id.into(), r#type: "mockCallback".into(), name: name.into(), ..Connector::default() }
    }

    async fn overlay() -> (Arc<MemoryStorage>, StaticOverlay) {
        let inner = Arc::new(MemoryStorage::new());
        // Stored objects that clash with static ones: the static ones must win.
        assert!(inner.create_client(client("static-client", "stored")).await.is_ok());
        assert!(inner.create_client(client("dyn-client", "stored")).await.is_ok());
        assert!(inner.create_password(password("admin@example.com", "stored")).await.is_ok());
        assert!(inner.create_password(password("dyn@example.com", "dyn")).await.is_ok());
        assert!(inner.create_connector(connector("static-conn", "stored")).await.is_ok());
        assert!(inner.create_connector(connector("dyn-conn", "stored")).await.is_ok());
        let overlay = StaticOverlay::new(
            inner.clone(),
            vec![client("static-client", "static")],
            vec![password("Admin@Example.com", "static")],
            vec![connector("static-conn", "static")],
        );
        (inner, overlay)
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[tokio::test]
    async fn static_objects_win_on_get_and_list() {
        let (_, s) = overlay().await;
        assert_eq!(s.get_client("static-client").await.map(|c| c.name).ok(), Some("static".into()));
        assert_eq!(s.get_client("dyn-client").await.map(|c| c.name).ok(), Some("stored".into()));
        assert!(matches!(s.get_client("nope").await, Err(StorageError::NotFound)));
        let clients = s.list_clients().await.unwrap_or_default();
        assert_eq!(clients.len(), 2);
        assert!(clients.iter().any(|c| c.id == "static-client" && c.name == "static"));

        for email in ["admin@example.com", "ADMIN@example.COM"] {
            assert_eq!(s.get_password(email).await.map(|p| p.user_id).ok(), Some("static".into()));
        }
        assert_eq!(s.get_password("DYN@example.com").await.map(|p| p.user_id).ok(), Some("dyn".into()));
        let passwords = s.list_passwords().await.unwrap_or_default();
        assert_eq!(
            sorted(passwords.iter().map(|p| format!("{}={}", p.email, p.user_id)).collect()),
            vec!["admin@example.com=static".to_owned(), "dyn@example.com=dyn".to_owned()]
        );

        assert_eq!(s.get_connector("static-conn").await.map(|c| c.name).ok(), Some("static".into()));
        let connectors = s.list_connectors().await.unwrap_or_default();
        assert_eq!(
            sorted(connectors.iter().map(|c| format!("{}={}", c.id, c.name)).collect()),
            vec!["dyn-conn=stored".to_owned(), "static-conn=static".to_owned()]
        );
    }

    #[tokio::test]
    async fn writes_to_static_ids_are_read_only_and_leave_storage_alone() {
        let (inner, s) = overlay().await;
        let same = |c: Client| Ok(c);
        let msg = |r: Result<()>| match r {
            Err(StorageError::ReadOnly(what)) => what,
            other => format!("unexpected {other:?}"),
        };
        assert_eq!(msg(s.create_client(client("static-client", "x")).await), "client \"static-client\"");
        assert_eq!(
            msg(s.update_client("static-client", &same).await.map(|_| ())),
            "client \"static-client\""
        );
        assert_eq!(msg(s.delete_client("static-client").await), "client \"static-client\"");
        assert!(inner.get_client("static-client").await.is_ok(), "stored shadow untouched");

        let same_p = |p: Password| Ok(p);
        assert_eq!(
            msg(s.create_password(password("ADMIN@example.com", "x")).await),
            "password \"admin@example.com\""
        );
        assert_eq!(
            msg(s.update_password("Admin@example.com", &same_p).await.map(|_| ())),
            "password \"admin@example.com\""
        );
        assert_eq!(msg(s.delete_password("admin@EXAMPLE.com").await), "password \"admin@example.com\"");

        let same_c = |c: Connector| Ok(c);
        assert_eq!(msg(s.create_connector(connector("static-conn", "x")).await), "connector \"static-conn\"");
        assert_eq!(
            msg(s.update_connector("static-conn", &same_c).await.map(|_| ())),
            "connector \"static-conn\""
        );
        assert_eq!(msg(s.delete_connector("static-conn").await), "connector \"static-conn\"");
        let err = s.delete_connector("static-conn").await.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err, "connector \"static-conn\" is defined in the configuration file and is read-only");
    }

    #[tokio::test]
    async fn other_ids_and_objects_are_delegated() {
        let (inner, s) = overlay().await;
        assert!(s.create_client(client("new", "n")).await.is_ok());
        assert!(inner.get_client("new").await.is_ok());
        let renamed = s
            .update_client("new", &|mut c: Client| {
                c.name = "renamed".into();
                Ok(c)
            })
            .await;
        assert_eq!(renamed.map(|c| c.name).ok(), Some("renamed".into()));
        assert!(s.delete_client("new").await.is_ok());
        assert!(matches!(s.delete_client("new").await, Err(StorageError::NotFound)));
        assert!(matches!(s.create_client(client("dyn-client", "x")).await, Err(StorageError::AlreadyExists)));

        assert!(s.delete_password("DYN@example.com").await.is_ok());
        assert!(matches!(inner.get_password("dyn@example.com").await, Err(StorageError::NotFound)));
        assert!(s.delete_connector("dyn-conn").await.is_ok());

        let sessions =
            OfflineSessions { user_id: "u".into(), conn_id: "c".into(), ..OfflineSessions::default() };
        assert!(s.create_offline_sessions(sessions.clone()).await.is_ok());
        assert_eq!(inner.get_offline_sessions("u", "c").await.ok(), Some(sessions));
        assert!(s.health_check().await.is_ok());
    }

    #[test]
    fn duplicate_static_entries_keep_the_first() {
        let s = StaticOverlay::new(
            Arc::new(MemoryStorage::new()),
            vec![client("a", "first"), client("a", "second")],
            vec![password("X@y.z", "1"), password("x@Y.z", "2")],
            vec![],
        );
        assert_eq!(s.clients.len(), 1);
        assert_eq!(s.clients.first().map(|c| c.name.as_str()), Some("first"));
        assert_eq!(s.passwords.len(), 1);
        assert!(s.is_static_password("X@Y.Z"));
    }
}
