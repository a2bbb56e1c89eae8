//! `storage`: the backend type and its `config` (environment-expanded unless `DEX_EXPAND_ENV` is
//! false).

use serde_yaml_ng::Value;

use super::expand::expand_value;
use super::raw::{Ctx, Obj, join};
use crate::storage::{PostgresConfig, StorageConfig};

const STORAGE_KEYS: &[&str] = &["type", "config"];
const SQLITE_KEYS: &[&str] = &["file"];
const POSTGRES_KEYS: &[&str] = &[
    "host",
    "port",
    "database",
    "user",
    "password",
    "connectionTimeout",
    "maxOpenConns",
    "maxIdleConns",
    "connMaxLifetime",
    "ssl",
];
const SSL_KEYS: &[&str] = &["mode", "caFile", "certFile", "keyFile"];
const SSL_MODES: &[&str] = &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// Reads `storage`. Returns `Memory` (after recording a problem) when it cannot be used.
pub(crate) fn storage(ctx: &mut Ctx<'_>, top: &Obj<'_>, expand: bool) -> StorageConfig {
    let Some(obj) = top.child(ctx, "storage", STORAGE_KEYS) else {
        if !top.has("storage") {
            ctx.error(
                "storage",
                "required; add a storage section such as `storage: {type: sqlite3, config: {file: /var/dex/dex.db}}` \
                 (types: memory, sqlite3, postgres)",
            );
        }
        return StorageConfig::Memory;
    };
    let type_path = obj.key_path("type");
    let Some(kind) = obj.required(ctx, "type", "required; use memory, sqlite3 or postgres") else {
        return StorageConfig::Memory;
    };
    let expanded;
    let config: Option<(String, &Value)> = match obj.get("config") {
        Some((path, v)) if expand => {
            expanded = expand_value(v, ctx.env);
            Some((path, &expanded))
        }
        other => other,
    };
    let config_path = obj.key_path("config");
    match kind.as_str() {
        "memory" => {
            if let Some((path, v)) = config {
                // The memory backend takes no settings: every key is unknown.
                let _ = Obj::new(ctx, &path, v, &[]);
            }
            StorageConfig::Memory
        }
        "sqlite3" => sqlite(ctx, &config_path, config),
        "postgres" => postgres(ctx, &config_path, config),
        "mysql" | "etcd" | "kubernetes" => {
            ctx.error(
                &type_path,
                format!(
                    "storage type {kind:?} is not supported yet by Oxidex; use sqlite3 or postgres \
                     (data can be moved with the gRPC API)"
                ),
            );
            StorageConfig::Memory
        }
        _ => {
            let shown: String = kind.chars().take(32).collect();
            ctx.error(&type_path, format!("unknown storage type {shown:?}; use memory, sqlite3 or postgres"));
            StorageConfig::Memory
        }
    }
}

fn sqlite(ctx: &mut Ctx<'_>, config_path: &str, config: Option<(String, &Value)>) -> StorageConfig {
    let config_present = config.is_some();
    let obj = match config {
        Some((path, v)) => Obj::new(ctx, &path, v, SQLITE_KEYS),
        None => None,
    };
    let required = "required for sqlite3; set the database file, e.g. `file: /var/dex/dex.db`";
    let file = match (&obj, config_present) {
        (Some(o), _) => o.required(ctx, "file", required),
        (None, false) => {
            ctx.error(&join(config_path, "file"), required);
            None
        }
        // The config is not a mapping: already reported.
        (None, true) => None,
    };
    file.map_or(StorageConfig::Memory, |file| StorageConfig::Sqlite { file })
}

/// Splits `host:port` / `[v6]:port` as Go's `net.SplitHostPort`; `None` when it is not one.
fn split_host_port(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host.to_owned(), port));
    }
    let (host, port) = s.split_once(':')?;
    if port.contains(':') {
        return None;
    }
    Some((host.to_owned(), port))
}

fn postgres(ctx: &mut Ctx<'_>, config_path: &str, config: Option<(String, &Value)>) -> StorageConfig {
    let Some((path, v)) = config else {
        ctx.error(config_path, "required for postgres; set at least host, database, user and password");
        return StorageConfig::Memory;
    };
    let Some(o) = Obj::new(ctx, &path, v, POSTGRES_KEYS) else { return StorageConfig::Memory };
    let mut pg = PostgresConfig {
        host: o.string(ctx, "host").unwrap_or_default(),
        port: o.uint(ctx, "port", u64::from(u16::MAX)).and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        database: o.string(ctx, "database").unwrap_or_default(),
        user: o.string(ctx, "user").unwrap_or_default(),
        password: o.string(ctx, "password").unwrap_or_default(),
        connection_timeout_secs: o.uint(ctx, "connectionTimeout", u64::from(u32::MAX)).unwrap_or(0),
        max_open_conns: o
            .uint(ctx, "maxOpenConns", u64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        max_idle_conns: o
            .uint(ctx, "maxIdleConns", u64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        conn_max_lifetime_secs: o.uint(ctx, "connMaxLifetime", u64::from(u32::MAX)).unwrap_or(0),
        ssl_mode: "verify-full".to_owned(),
        ..PostgresConfig::default()
    };
    // `host: db:5432` is accepted for compatibility, as Dex does; the port in it wins.
    if !pg.host.starts_with('/')
        && let Some((host, port)) = split_host_port(&pg.host)
    {
        match port.parse::<u16>() {
            Ok(port) => {
                pg.host = host;
                pg.port = port;
            }
            Err(_) => ctx.error(&o.key_path("host"), "the port after `:` is not a number from 0 to 65535"),
        }
    }
    if pg.max_idle_conns > 0 && pg.max_open_conns > 0 && pg.max_idle_conns > pg.max_open_conns {
        ctx.warn(
            &o.key_path("maxIdleConns"),
            "larger than maxOpenConns; only maxOpenConns connections are kept",
        );
    }
    if let Some(ssl) = o.child(ctx, "ssl", SSL_KEYS) {
        let mode_path = ssl.key_path("mode");
        if let Some(mode) = ssl.nonempty(ctx, "mode") {
            if SSL_MODES.contains(&mode.as_str()) {
                pg.ssl_mode = mode;
            } else {
                let shown: String = mode.chars().take(32).collect();
                ctx.error(&mode_path, format!("unknown mode {shown:?}; use one of {}", SSL_MODES.join(", ")));
            }
        }
        pg.ssl_ca_file = ssl.string(ctx, "caFile").unwrap_or_default();
        pg.ssl_cert_file = ssl.string(ctx, "certFile").unwrap_or_default();
        pg.ssl_key_file = ssl.string(ctx, "keyFile").unwrap_or_default();
        if pg.ssl_cert_file.is_empty() != pg.ssl_key_file.is_empty() {
            ctx.error(ssl.path(), "certFile and keyFile go together (client certificate authentication)");
        }
    }
    StorageConfig::Postgres(pg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("db:5432"), Some(("db".to_owned(), "5432")));
        assert_eq!(split_host_port("[::1]:5432"), Some(("::1".to_owned(), "5432")));
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("db"), None);
    }
}
