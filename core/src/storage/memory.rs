//! The memory backend: one mutex over plain maps. For tests and demos; nothing is shared between
//! processes or survives a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;

#[derive(Debug, Default)]
struct State {
    clients: HashMap<String, Client>,
    passwords: HashMap<String, Password>,
    connectors: HashMap<String, Connector>,
    keys: Option<Keys>,
    refresh: HashMap<String, RefreshToken>,
    offline: HashMap<(String, String), OfflineSessions>,
    auth_requests: HashMap<String, AuthRequest>,
    auth_codes: HashMap<String, AuthCode>,
    device_requests: HashMap<String, DeviceRequest>,
    device_tokens: HashMap<String, DeviceToken>,
    tombstones: HashMap<String, Tombstone>,
}

/// In-memory storage.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic while holding the lock cannot leave a map half-updated (every change is one
        // insert or remove), so a poisoned lock is safe to reuse.
        let mut guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

fn create<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) -> Result<()> {
    if map.contains_key(&k) {
        return Err(StorageError::AlreadyExists);
    }
    map.insert(k, v);
    Ok(())
}

fn get<K: std::hash::Hash + Eq, V: Clone>(map: &HashMap<K, V>, k: &K) -> Result<V> {
    map.get(k).cloned().ok_or(StorageError::NotFound)
}

fn update<K: std::hash::Hash + Eq, V: Clone>(map: &mut HashMap<K, V>, k: &K, f: Updater<'_, V>) -> Result<V> {
    let slot = map.get_mut(k).ok_or(StorageError::NotFound)?;
    let new = f(slot.clone())?;
    slot.clone_from(&new);
    Ok(new)
}

fn delete<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: &K) -> Result<()> {
    map.remove(k).map(|_| ()).ok_or(StorageError::NotFound)
}

fn gc<V>(map: &mut HashMap<String, V>, expiry: impl Fn(&V) -> DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let before = map.len();
    map.retain(|_, v| expiry(v) >= now);
    (before - map.len()) as u64
}

#[async_trait]
impl DurableStorage for MemoryStorage {
    async fn create_client(&self, client: Client) -> Result<()> {
        self.with(|s| create(&mut s.clients, client.id.clone(), client))
    }
    async fn get_client(&self, id: &str) -> Result<Client> {
        self.with(|s| get(&s.clients, &id.to_owned()))
    }
    async fn list_clients(&self) -> Result<Vec<Client>> {
        Ok(self.with(|s| s.clients.values().cloned().collect()))
    }
    async fn update_client(&self, id: &str, updater: Updater<'_, Client>) -> Result<Client> {
        self.with(|s| update(&mut s.clients, &id.to_owned(), updater))
    }
    async fn delete_client(&self, id: &str) -> Result<()> {
        self.with(|s| delete(&mut s.clients, &id.to_owned()))
    }

    async fn create_password(&self, mut password: Password) -> Result<()> {
        password.email = password.email.to_lowercase();
        self.with(|s| create(&mut s.passwords, password.email.clone(), password))
    }
    async fn get_password(&self, email: &str) -> Result<Password> {
        self.with(|s| get(&s.passwords, &email.to_lowercase()))
    }
    async fn list_passwords(&self) -> Result<Vec<Password>> {
        Ok(self.with(|s| s.passwords.values().cloned().collect()))
    }
    async fn update_password(&self, email: &str, updater: Updater<'_, Password>) -> Result<Password> {
        let key = email.to_lowercase();
        let keep_email = |p: Password| -> Result<Password> {
            let mut new = updater(p)?;
            new.email.clone_from(&key);
            Ok(new)
        };
        self.with(|s| update(&mut s.passwords, &key, &keep_email))
    }
    async fn delete_password(&self, email: &str) -> Result<()> {
        self.with(|s| delete(&mut s.passwords, &email.to_lowercase()))
    }

    async fn create_connector(&self, connector: Connector) -> Result<()> {
        self.with(|s| create(&mut s.connectors, connector.id.clone(), connector))
    }
    async fn get_connector(&self, id: &str) -> Result<Connector> {
        self.with(|s| get(&s.connectors, &id.to_owned()))
    }
    async fn list_connectors(&self) -> Result<Vec<Connector>> {
        Ok(self.with(|s| s.connectors.values().cloned().collect()))
    }
    async fn update_connector(&self, id: &str, updater: Updater<'_, Connector>) -> Result<Connector> {
        self.with(|s| update(&mut s.connectors, &id.to_owned(), updater))
    }
    async fn delete_connector(&self, id: &str) -> Result<()> {
        self.with(|s| delete(&mut s.connectors, &id.to_owned()))
    }

    async fn get_keys(&self) -> Result<Keys> {
        self.with(|s| s.keys.clone().ok_or(StorageError::NotFound))
    }
    async fn create_keys(&self, keys: Keys) -> Result<()> {
        self.with(|s| {
            if s.keys.is_some() {
                return Err(StorageError::AlreadyExists);
            }
            s.keys = Some(keys);
            Ok(())
        })
    }
    async fn update_keys(&self, updater: Updater<'_, Keys>) -> Result<Keys> {
        self.with(|s| {
            let old = s.keys.clone().ok_or(StorageError::NotFound)?;
            let new = updater(old)?;
            s.keys = Some(new.clone());
            Ok(new)
        })
    }

    async fn create_refresh(&self, token: RefreshToken) -> Result<()> {
        self.with(|s| create(&mut s.refresh, token.id.clone(), token))
    }
    async fn get_refresh(&self, id: &str) -> Result<RefreshToken> {
        self.with(|s| get(&s.refresh, &id.to_owned()))
    }
    async fn list_refresh_tokens(&self) -> Result<Vec<RefreshToken>> {
        Ok(self.with(|s| s.refresh.values().cloned().collect()))
    }
    async fn update_refresh(&self, id: &str, updater: Updater<'_, RefreshToken>) -> Result<RefreshToken> {
        self.with(|s| update(&mut s.refresh, &id.to_owned(), updater))
    }
    async fn delete_refresh(&self, id: &str) -> Result<()> {
        self.with(|s| delete(&mut s.refresh, &id.to_owned()))
    }

    async fn create_offline_sessions(&self, sessions: OfflineSessions) -> Result<()> {
        let key = (sessions.user_id.clone(), sessions.conn_id.clone());
        self.with(|s| create(&mut s.offline, key, sessions))
    }
    async fn get_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<OfflineSessions> {
        self.with(|s| get(&s.offline, &(user_id.to_owned(), conn_id.to_owned())))
    }
    async fn update_offline_sessions(
        &self,
        user_id: &str,
        conn_id: &str,
        updater: Updater<'_, OfflineSessions>,
    ) -> Result<OfflineSessions> {
        self.with(|s| update(&mut s.offline, &(user_id.to_owned(), conn_id.to_owned()), updater))
    }
    async fn delete_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<()> {
        self.with(|s| delete(&mut s.offline, &(user_id.to_owned(), conn_id.to_owned())))
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
    async fn close(&self) {}
}

#[async_trait]
impl FlowStorage for MemoryStorage {
    async fn create_auth_request(&self, request: AuthRequest) -> Result<()> {
        self.with(|s| create(&mut s.auth_requests, request.id.clone(), request))
    }
    async fn get_auth_request(&self, id: &str) -> Result<AuthRequest> {
        self.with(|s| get(&s.auth_requests, &id.to_owned()))
    }
    async fn update_auth_request(&self, id: &str, updater: Updater<'_, AuthRequest>) -> Result<AuthRequest> {
        self.with(|s| update(&mut s.auth_requests, &id.to_owned(), updater))
    }
    async fn delete_auth_request(&self, id: &str) -> Result<()> {
        self.with(|s| delete(&mut s.auth_requests, &id.to_owned()))
    }

    async fn create_auth_code(&self, code: AuthCode) -> Result<()> {
        self.with(|s| create(&mut s.auth_codes, code.id.clone(), code))
    }
    async fn get_auth_code(&self, id: &str) -> Result<AuthCode> {
        self.with(|s| get(&s.auth_codes, &id.to_owned()))
    }
    async fn take_auth_code(&self, id: &str) -> Result<AuthCode> {
        self.with(|s| s.auth_codes.remove(id).ok_or(StorageError::NotFound))
    }

    async fn create_device_request(&self, request: DeviceRequest) -> Result<()> {
        self.with(|s| create(&mut s.device_requests, request.user_code.clone(), request))
    }
    async fn get_device_request(&self, user_code: &str) -> Result<DeviceRequest> {
        self.with(|s| get(&s.device_requests, &user_code.to_owned()))
    }
    async fn delete_device_request(&self, user_code: &str) -> Result<()> {
        self.with(|s| delete(&mut s.device_requests, &user_code.to_owned()))
    }

    async fn create_device_token(&self, token: DeviceToken) -> Result<()> {
        self.with(|s| create(&mut s.device_tokens, token.device_code.clone(), token))
    }
    async fn get_device_token(&self, device_code: &str) -> Result<DeviceToken> {
        self.with(|s| get(&s.device_tokens, &device_code.to_owned()))
    }
    async fn update_device_token(
        &self,
        device_code: &str,
        updater: Updater<'_, DeviceToken>,
    ) -> Result<DeviceToken> {
        self.with(|s| update(&mut s.device_tokens, &device_code.to_owned(), updater))
    }

    async fn create_tombstone(&self, tombstone: Tombstone) -> Result<()> {
        self.with(|s| create(&mut s.tombstones, tombstone.id.clone(), tombstone))
    }
    async fn get_tombstone(&self, id: &str) -> Result<Tombstone> {
        self.with(|s| get(&s.tombstones, &id.to_owned()))
    }

    async fn garbage_collect(&self, now: DateTime<Utc>) -> Result<GcResult> {
        Ok(self.with(|s| GcResult {
            auth_requests: gc(&mut s.auth_requests, |v| v.expiry, now),
            auth_codes: gc(&mut s.auth_codes, |v| v.expiry, now),
            device_requests: gc(&mut s.device_requests, |v| v.expiry, now),
            device_tokens: gc(&mut s.device_tokens, |v| v.expiry, now),
            tombstones: gc(&mut s.tombstones, |v| v.expiry, now),
        }))
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}
