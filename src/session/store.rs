//! Where server-side sessions live. An enum rather than a trait object: three known kinds,
//! no boxing on the request path.

use std::sync::Arc;
use std::time::Duration;

use crate::config::SessionConfig;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("session.secret is not set")]
    NoSecret,
    #[error("the session store is unreachable: {0}")]
    Unavailable(String),
    #[error("cannot encode the session: {0}")]
    Encode(String),
    #[error("session.redis_url: {0}")]
    Config(String),
}

pub enum Store {
    /// The sealed record is the cookie.
    Cookie,
    Memory(moka::future::Cache<String, Arc<str>>),
    #[cfg(feature = "redis-store")]
    Redis(Box<redis_store::RedisStore>),
}

impl Store {
    pub fn memory(config: &SessionConfig) -> Store {
        Store::Memory(
            moka::future::Cache::builder()
                .max_capacity(config.memory_max_sessions)
                .time_to_live(config.max_lifetime)
                .build(),
        )
    }

    #[cfg(feature = "redis-store")]
    pub fn redis(config: &SessionConfig) -> Result<Store, StoreError> {
        Ok(Store::Redis(Box::new(redis_store::RedisStore::new(
            config,
        )?)))
    }

    #[cfg(not(feature = "redis-store"))]
    pub fn redis(_config: &SessionConfig) -> Result<Store, StoreError> {
        Err(StoreError::Config("this build has no Redis support".into()))
    }

    pub async fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Cookie => Ok(None),
            Store::Memory(cache) => Ok(cache.get(id).await.map(|s| s.to_string())),
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.get(id).await,
        }
    }

    pub async fn put(&self, id: &str, json: &str, ttl_secs: u64) -> Result<(), StoreError> {
        match self {
            Store::Cookie => Ok(()),
            Store::Memory(cache) => {
                cache.insert(id.to_string(), Arc::from(json)).await;
                Ok(())
            }
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.put(id, json, ttl_secs).await,
            #[cfg(not(feature = "redis-store"))]
            #[allow(unreachable_patterns)]
            _ => {
                let _ = ttl_secs;
                Ok(())
            }
        }
    }

    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        match self {
            Store::Cookie => Ok(()),
            Store::Memory(cache) => {
                cache.invalidate(id).await;
                Ok(())
            }
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.delete(id).await,
        }
    }

    pub async fn try_lock(&self, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        match self {
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.try_lock(key, ttl_ms).await,
            _ => {
                let _ = (key, ttl_ms);
                Ok(true)
            }
        }
    }

    pub async fn unlock(&self, key: &str) {
        match self {
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.unlock(key).await,
            _ => {
                let _ = key;
            }
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.ping().await,
            _ => Ok(()),
        }
    }
}

#[cfg(feature = "redis-store")]
mod redis_store {
    use super::*;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::AsyncCommands;
    use tokio::sync::OnceCell;

    /// Redis through a reconnecting connection manager, connected lazily so a Redis that is
    /// down at start does not stop the gateway.
    pub struct RedisStore {
        client: redis::Client,
        conn: OnceCell<ConnectionManager>,
        prefix: String,
        timeout: Duration,
    }

    impl RedisStore {
        pub fn new(config: &SessionConfig) -> Result<RedisStore, StoreError> {
            let url = config.redis_url.as_deref().unwrap_or_default();
            if url.starts_with("redis+sentinel://") || url.starts_with("redis+cluster://") {
                // Kept out until they are tested against real servers.
                return Err(StoreError::Config(
                    "Sentinel and Cluster URLs are not supported yet; use redis:// or rediss:// to one endpoint".into(),
                ));
            }
            let client = redis::Client::open(url).map_err(|e| StoreError::Config(e.to_string()))?;
            Ok(RedisStore {
                client,
                conn: OnceCell::new(),
                prefix: config.redis_key_prefix.clone(),
                timeout: Duration::from_secs(2),
            })
        }

        async fn conn(&self) -> Result<ConnectionManager, StoreError> {
            let c = self
                .conn
                .get_or_try_init(|| async {
                    let cfg = ConnectionManagerConfig::new()
                        .set_connection_timeout(self.timeout)
                        .set_response_timeout(self.timeout)
                        .set_number_of_retries(1)
                        .set_max_delay(1000);
                    ConnectionManager::new_with_config(self.client.clone(), cfg)
                        .await
                        .map_err(unavailable)
                })
                .await?;
            Ok(c.clone())
        }

        fn key(&self, id: &str) -> String {
            format!("{}{id}", self.prefix)
        }

        pub async fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
            let mut c = self.conn().await?;
            c.get(self.key(id)).await.map_err(unavailable)
        }

        pub async fn put(&self, id: &str, json: &str, ttl_secs: u64) -> Result<(), StoreError> {
            let mut c = self.conn().await?;
            c.set_ex::<_, _, ()>(self.key(id), json, ttl_secs)
                .await
                .map_err(unavailable)
        }

        pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
            let mut c = self.conn().await?;
            c.del::<_, ()>(self.key(id)).await.map_err(unavailable)
        }

        pub async fn try_lock(&self, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
            let mut c = self.conn().await?;
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{}lock:{key}", self.prefix))
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(set.is_some())
        }

        pub async fn unlock(&self, key: &str) {
            if let Ok(mut c) = self.conn().await {
                let _: Result<(), _> = c.del(format!("{}lock:{key}", self.prefix)).await;
            }
        }

        pub async fn ping(&self) -> Result<(), StoreError> {
            let mut c = self.conn().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    }

    fn unavailable(e: redis::RedisError) -> StoreError {
        StoreError::Unavailable(e.to_string())
    }
}
