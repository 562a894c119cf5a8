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
    use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
    use redis::cluster::ClusterClient;
    use redis::cluster_async::ClusterConnection;
    use redis::AsyncCommands;
    use tokio::sync::OnceCell;

    /// One Redis (`redis://`, `rediss://`) through a reconnecting connection manager, or a
    /// Redis Cluster (`redis+cluster://host:port,host:port`) through the cluster client.
    /// Connected lazily, so a Redis that is down at start does not stop the gateway.
    pub struct RedisStore {
        backend: Backend,
        prefix: String,
    }

    // One per process: the size difference costs nothing worth a box.
    #[allow(clippy::large_enum_variant)]
    enum Backend {
        Single(redis::Client, OnceCell<ConnectionManager>),
        Cluster(ClusterClient, OnceCell<ClusterConnection>),
    }

    const TIMEOUT: Duration = Duration::from_secs(2);

    /// `redis+cluster://a:1,b:2/` (or `rediss+cluster://`) -> the seed nodes' URLs.
    pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("redis+cluster://") {
            ("redis", r)
        } else {
            ("rediss", url.strip_prefix("rediss+cluster://")?)
        };
        let (auth, hosts) = match rest.trim_end_matches('/').rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest.trim_end_matches('/')),
        };
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{auth}{h}"))
            .collect();
        (!nodes.is_empty()).then_some(nodes)
    }

    impl RedisStore {
        pub fn new(config: &SessionConfig) -> Result<RedisStore, StoreError> {
            let url = config.redis_url.as_deref().unwrap_or_default();
            let backend = match cluster_nodes(url) {
                Some(nodes) => Backend::Cluster(
                    ClusterClient::builder(nodes)
                        .connection_timeout(TIMEOUT)
                        .response_timeout(TIMEOUT)
                        .build()
                        .map_err(|e| StoreError::Config(e.to_string()))?,
                    OnceCell::new(),
                ),
                None => Backend::Single(
                    redis::Client::open(url).map_err(|e| StoreError::Config(e.to_string()))?,
                    OnceCell::new(),
                ),
            };
            Ok(RedisStore {
                backend,
                prefix: config.redis_key_prefix.clone(),
            })
        }

        async fn conn(&self) -> Result<Conn, StoreError> {
            match &self.backend {
                Backend::Single(client, cell) => {
                    let c = cell
                        .get_or_try_init(|| async {
                            let cfg = ConnectionManagerConfig::new()
                                .set_connection_timeout(TIMEOUT)
                                .set_response_timeout(TIMEOUT)
                                .set_number_of_retries(1)
                                .set_max_delay(1000);
                            ConnectionManager::new_with_config(client.clone(), cfg)
                                .await
                                .map_err(unavailable)
                        })
                        .await?;
                    Ok(Conn::Single(c.clone()))
                }
                Backend::Cluster(client, cell) => {
                    let c = cell
                        .get_or_try_init(|| async {
                            client.get_async_connection().await.map_err(unavailable)
                        })
                        .await?;
                    Ok(Conn::Cluster(c.clone()))
                }
            }
        }

        fn key(&self, id: &str) -> String {
            format!("{}{id}", self.prefix)
        }

        fn lock_key(&self, key: &str) -> String {
            format!("{}lock:{key}", self.prefix)
        }

        pub async fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
            let key = self.key(id);
            match self.conn().await? {
                Conn::Single(mut c) => get(&mut c, &key).await,
                Conn::Cluster(mut c) => get(&mut c, &key).await,
            }
        }

        pub async fn put(&self, id: &str, json: &str, ttl_secs: u64) -> Result<(), StoreError> {
            let key = self.key(id);
            match self.conn().await? {
                Conn::Single(mut c) => put(&mut c, &key, json, ttl_secs).await,
                Conn::Cluster(mut c) => put(&mut c, &key, json, ttl_secs).await,
            }
        }

        pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
            let key = self.key(id);
            match self.conn().await? {
                Conn::Single(mut c) => del(&mut c, &key).await,
                Conn::Cluster(mut c) => del(&mut c, &key).await,
            }
        }

        pub async fn try_lock(&self, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
            let key = self.lock_key(key);
            match self.conn().await? {
                Conn::Single(mut c) => set_nx(&mut c, &key, ttl_ms).await,
                Conn::Cluster(mut c) => set_nx(&mut c, &key, ttl_ms).await,
            }
        }

        pub async fn unlock(&self, key: &str) {
            let key = self.lock_key(key);
            let _ = match self.conn().await {
                Ok(Conn::Single(mut c)) => del(&mut c, &key).await,
                Ok(Conn::Cluster(mut c)) => del(&mut c, &key).await,
                Err(e) => Err(e),
            };
        }

        pub async fn ping(&self) -> Result<(), StoreError> {
            let mut ping = redis::cmd("PING");
            let ping = ping.arg("ssogate");
            let answer: Result<String, _> = match self.conn().await? {
                Conn::Single(mut c) => ping.query_async(&mut c).await,
                Conn::Cluster(mut c) => ping.query_async(&mut c).await,
            };
            answer.map(|_| ()).map_err(unavailable)
        }
    }

    // Lives on the stack for one command; boxing would allocate for nothing.
    #[allow(clippy::large_enum_variant)]
    enum Conn {
        Single(ConnectionManager),
        Cluster(ClusterConnection),
    }

    async fn get<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        c.get(key).await.map_err(unavailable)
    }

    async fn put<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
        json: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        c.set_ex::<_, _, ()>(key, json, ttl_secs)
            .await
            .map_err(unavailable)
    }

    async fn del<C: ConnectionLike + Send>(c: &mut C, key: &str) -> Result<(), StoreError> {
        c.del::<_, ()>(key).await.map_err(unavailable)
    }

    async fn set_nx<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(c)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    fn unavailable(e: redis::RedisError) -> StoreError {
        StoreError::Unavailable(e.to_string())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn cluster_urls_list_the_seed_nodes() {
            assert_eq!(
                super::cluster_nodes("redis+cluster://10.0.0.1:7000,10.0.0.2:7001/").unwrap(),
                vec!["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]
            );
            assert_eq!(
                super::cluster_nodes("rediss+cluster://:pw@a:1,b:2").unwrap(),
                vec!["rediss://:pw@a:1", "rediss://:pw@b:2"]
            );
            assert!(super::cluster_nodes("redis://a:1").is_none());
        }
    }
}
