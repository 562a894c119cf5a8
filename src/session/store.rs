//! Where server-side sessions live. An enum rather than a trait object: three known kinds,
//! no boxing on the request path. Also ends all sessions of one person (`end_sessions_of`,
//! for the admin page): the memory store looks through its records, Redis keeps an index
//! set per person beside them.

use std::sync::Arc;

use super::pack;
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
    /// Records packed (`pack`): tokens as bytes, not base64url text.
    Memory(moka::future::Cache<String, Arc<[u8]>>),
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
            Store::Memory(cache) => Ok(cache.get(id).await.and_then(|p| pack::unpack(&p))),
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.get(id).await,
        }
    }

    /// Like `put`, but only over a record that is still there; false when it is gone (a
    /// sign-out came first), and then nothing is written.
    pub async fn replace(&self, id: &str, json: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        match self {
            Store::Cookie => Ok(true),
            Store::Memory(cache) => {
                use moka::ops::compute::{CompResult, Op};
                let json = pack::pack(json);
                let result = cache
                    .entry(id.to_string())
                    .and_compute_with(|entry| async move {
                        match entry {
                            Some(_) => Op::Put(json),
                            None => Op::Nop,
                        }
                    })
                    .await;
                Ok(matches!(result, CompResult::ReplacedWith(_)))
            }
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.replace(id, json, ttl_secs).await,
            #[cfg(not(feature = "redis-store"))]
            #[allow(unreachable_patterns)]
            _ => {
                let _ = ttl_secs;
                Ok(true)
            }
        }
    }

    pub async fn put(&self, id: &str, json: &str, ttl_secs: u64) -> Result<(), StoreError> {
        match self {
            Store::Cookie => Ok(()),
            Store::Memory(cache) => {
                cache.insert(id.to_string(), pack::pack(json)).await;
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

    /// Bytes the memory store keeps for a session: its id and its packed record.
    #[cfg(test)]
    pub async fn kept_bytes(&self, id: &str) -> Option<usize> {
        match self {
            Store::Memory(cache) => cache.get(id).await.map(|p| id.len() + p.len()),
            _ => None,
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

    /// Takes the lock `key` for `owner` (a token unique to this attempt) for `ttl_ms`.
    pub async fn try_lock(&self, key: &str, owner: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        match self {
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.try_lock(key, owner, ttl_ms).await,
            _ => {
                let _ = (key, owner, ttl_ms);
                Ok(true)
            }
        }
    }

    /// Releases `key` if `owner` still holds it: a lock that expired and was taken by
    /// another replica is theirs.
    pub async fn unlock(&self, key: &str, owner: &str) {
        match self {
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.unlock(key, owner).await,
            _ => {
                let _ = (key, owner);
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

    /// Deletes every stored session whose principal has subject `sub`; how many. Never on
    /// the request path (an admin disabling or deleting someone), so the memory store may
    /// look through all its records rather than keep an index the sign-in would have to
    /// update. The cookie store has nothing to delete: 0.
    pub async fn end_sessions_of(&self, sub: &str) -> Result<usize, StoreError> {
        match self {
            Store::Cookie => Ok(0),
            Store::Memory(cache) => {
                let ids: Vec<Arc<String>> = cache
                    .iter()
                    .filter(|(_, packed)| {
                        pack::unpack(packed)
                            .is_some_and(|json| owner(&json).as_deref() == Some(sub))
                    })
                    .map(|(id, _)| id)
                    .collect();
                for id in &ids {
                    cache.invalidate(id.as_str()).await;
                }
                Ok(ids.len())
            }
            #[cfg(feature = "redis-store")]
            Store::Redis(r) => r.end_sessions_of(sub).await,
        }
    }
}

/// The subject of the principal a session record holds.
fn owner(json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Record {
        principal: Principal,
    }
    #[derive(serde::Deserialize)]
    struct Principal {
        sub: String,
    }
    serde_json::from_str::<Record>(json)
        .ok()
        .map(|r| r.principal.sub)
}

#[cfg(feature = "redis-store")]
mod redis_store {
    use super::*;
    use crate::runtime_slot::PerRuntime;
    use arc_swap::ArcSwapOption;
    use redis::aio::{
        ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
    };
    use redis::cluster::ClusterClient;
    use redis::cluster_async::ClusterConnection;
    use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
    use redis::AsyncCommands;
    use std::time::Duration;
    use tokio::sync::{Mutex, OnceCell};

    /// One Redis (`redis://`, `rediss://`) through a reconnecting connection manager, a
    /// Redis Cluster (`redis+cluster://host:port,host:port`) through the cluster client, or
    /// the master that Sentinel names (`redis+sentinel://host:port,host:port/service/db`),
    /// asked again after any error so a failover is followed. Connected lazily, so a Redis
    /// that is down at start does not stop the gateway.
    pub struct RedisStore {
        backend: Backend,
        prefix: String,
        /// How long a person's index set (`index_key`) lives after their last sign-in: the
        /// longest a session can.
        index_ttl_secs: u64,
    }

    enum Backend {
        // A connection per runtime (`runtime_slot`): each is a task on the runtime that
        // opened it.
        Single(redis::Client, PerRuntime<OnceCell<ConnectionManager>>),
        Cluster(ClusterClient, PerRuntime<OnceCell<ClusterConnection>>),
        Sentinel(
            Mutex<SentinelClient>,
            PerRuntime<ArcSwapOption<MultiplexedConnection>>,
        ),
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

    /// `redis+sentinel://a:26379,b:26379/mymaster/0` -> (sentinels, service, db).
    pub fn sentinel_parts(url: &str) -> Option<(Vec<String>, String, i64)> {
        let rest = url.strip_prefix("redis+sentinel://")?;
        let (hosts, path) = rest.split_once('/')?;
        let mut path = path.trim_end_matches('/').split('/');
        let service = path.next().filter(|s| !s.is_empty())?.to_string();
        let db = match path.next() {
            Some(d) => d.parse().ok()?,
            None => 0,
        };
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}"))
            .collect();
        (!nodes.is_empty()).then_some((nodes, service, db))
    }

    impl RedisStore {
        pub fn new(config: &SessionConfig) -> Result<RedisStore, StoreError> {
            let url = config.redis_url.as_deref().unwrap_or_default();
            if let Some((sentinels, service, db)) = sentinel_parts(url) {
                let node = SentinelNodeConnectionInfo {
                    tls_mode: None,
                    redis_connection_info: Some(redis::RedisConnectionInfo {
                        db,
                        ..Default::default()
                    }),
                };
                let client = SentinelClient::build(
                    sentinels,
                    service,
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| StoreError::Config(e.to_string()))?;
                return Ok(RedisStore {
                    backend: Backend::Sentinel(Mutex::new(client), PerRuntime::default()),
                    prefix: config.redis_key_prefix.clone(),
                    index_ttl_secs: config.max_lifetime.as_secs().max(1),
                });
            }
            let backend = match cluster_nodes(url) {
                Some(nodes) => Backend::Cluster(
                    ClusterClient::builder(nodes)
                        .connection_timeout(TIMEOUT)
                        .response_timeout(TIMEOUT)
                        .build()
                        .map_err(|e| StoreError::Config(e.to_string()))?,
                    PerRuntime::default(),
                ),
                None => Backend::Single(
                    redis::Client::open(url).map_err(|e| StoreError::Config(e.to_string()))?,
                    PerRuntime::default(),
                ),
            };
            Ok(RedisStore {
                backend,
                prefix: config.redis_key_prefix.clone(),
                index_ttl_secs: config.max_lifetime.as_secs().max(1),
            })
        }

        async fn conn(&self) -> Result<Conn, StoreError> {
            match &self.backend {
                Backend::Single(client, cell) => {
                    let c = cell
                        .here()
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
                        .here()
                        .get_or_try_init(|| async {
                            client.get_async_connection().await.map_err(unavailable)
                        })
                        .await?;
                    Ok(Conn::Cluster(c.clone()))
                }
                Backend::Sentinel(client, current) => {
                    let current = current.here();
                    if let Some(c) = current.load_full() {
                        return Ok(Conn::Sentinel((*c).clone()));
                    }
                    let mut client = client.lock().await;
                    if let Some(c) = current.load_full() {
                        return Ok(Conn::Sentinel((*c).clone()));
                    }
                    let cfg = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(TIMEOUT)
                        .set_response_timeout(TIMEOUT);
                    let c = tokio::time::timeout(
                        TIMEOUT * 2,
                        client.get_async_connection_with_config(&cfg),
                    )
                    .await
                    .map_err(|_| StoreError::Unavailable("Sentinel did not answer in time".into()))?
                    .map_err(unavailable)?;
                    current.store(Some(Arc::new(c.clone())));
                    Ok(Conn::Sentinel(c))
                }
            }
        }

        /// After an error, ask Sentinel for the master again next time (it may have failed over).
        fn forget<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
            if result.is_err() {
                // Every runtime's: they all reach the master that failed.
                if let Backend::Sentinel(_, current) = &self.backend {
                    current.all().for_each(|c| c.store(None));
                }
            }
            result
        }

        fn key(&self, id: &str) -> String {
            format!("{}{id}", self.prefix)
        }

        fn lock_key(&self, key: &str) -> String {
            format!("{}lock:{key}", self.prefix)
        }

        /// The set of session ids of the person with subject `sub` (session ids are
        /// base64url: never `user:...`).
        fn index_key(&self, sub: &str) -> String {
            format!("{}user:{sub}", self.prefix)
        }

        /// `op` (getting a connection included) within `TIMEOUT`: a Redis that accepts
        /// connections and never answers (stopped, or black-holed by a network fault) costs
        /// each request at most that, instead of queueing them behind the first connect.
        async fn within<T>(
            &self,
            op: impl std::future::Future<Output = Result<T, StoreError>>,
        ) -> Result<T, StoreError> {
            match tokio::time::timeout(TIMEOUT, op).await {
                Ok(result) => result,
                Err(_) => self.forget(Err(StoreError::Unavailable(format!(
                    "Redis did not answer within {TIMEOUT:?}"
                )))),
            }
        }

        pub async fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
            let key = self.key(id);
            self.within(async {
                match self.conn().await? {
                    Conn::Single(mut c) => get(&mut c, &key).await,
                    Conn::Cluster(mut c) => get(&mut c, &key).await,
                    Conn::Sentinel(mut c) => self.forget(get(&mut c, &key).await),
                }
            })
            .await
        }

        /// Writes the record and files its id under its person (`index_key`), so
        /// `end_sessions_of` finds it. A refresh (`replace`) keeps the id: no new filing.
        pub async fn put(&self, id: &str, json: &str, ttl_secs: u64) -> Result<(), StoreError> {
            let key = self.key(id);
            let index = owner(json).map(|sub| (self.index_key(&sub), self.index_ttl_secs));
            let index = index.as_ref().map(|(k, ttl)| (k.as_str(), id, *ttl));
            self.within(async {
                match self.conn().await? {
                    Conn::Single(mut c) => put(&mut c, &key, json, ttl_secs, index).await,
                    Conn::Cluster(mut c) => put(&mut c, &key, json, ttl_secs, index).await,
                    Conn::Sentinel(mut c) => {
                        self.forget(put(&mut c, &key, json, ttl_secs, index).await)
                    }
                }
            })
            .await
        }

        /// Deletes the sessions filed under `sub` and the index itself.
        pub async fn end_sessions_of(&self, sub: &str) -> Result<usize, StoreError> {
            let index = self.index_key(sub);
            let prefix = &self.prefix;
            self.within(async {
                match self.conn().await? {
                    Conn::Single(mut c) => end_all(&mut c, &index, prefix).await,
                    Conn::Cluster(mut c) => end_all(&mut c, &index, prefix).await,
                    Conn::Sentinel(mut c) => self.forget(end_all(&mut c, &index, prefix).await),
                }
            })
            .await
        }

        pub async fn replace(
            &self,
            id: &str,
            json: &str,
            ttl_secs: u64,
        ) -> Result<bool, StoreError> {
            let key = self.key(id);
            self.within(async {
                match self.conn().await? {
                    Conn::Single(mut c) => set_xx(&mut c, &key, json, ttl_secs).await,
                    Conn::Cluster(mut c) => set_xx(&mut c, &key, json, ttl_secs).await,
                    Conn::Sentinel(mut c) => {
                        self.forget(set_xx(&mut c, &key, json, ttl_secs).await)
                    }
                }
            })
            .await
        }

        pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
            let key = self.key(id);
            self.within(async {
                match self.conn().await? {
                    Conn::Single(mut c) => del(&mut c, &key).await,
                    Conn::Cluster(mut c) => del(&mut c, &key).await,
                    Conn::Sentinel(mut c) => self.forget(del(&mut c, &key).await),
                }
            })
            .await
        }

        pub async fn try_lock(
            &self,
            key: &str,
            owner: &str,
            ttl_ms: u64,
        ) -> Result<bool, StoreError> {
            let key = self.lock_key(key);
            self.within(async {
                match self.conn().await? {
                    Conn::Single(mut c) => set_nx(&mut c, &key, owner, ttl_ms).await,
                    Conn::Cluster(mut c) => set_nx(&mut c, &key, owner, ttl_ms).await,
                    Conn::Sentinel(mut c) => self.forget(set_nx(&mut c, &key, owner, ttl_ms).await),
                }
            })
            .await
        }

        pub async fn unlock(&self, key: &str, owner: &str) {
            let key = self.lock_key(key);
            let unlocked = self
                .within(async {
                    match self.conn().await? {
                        Conn::Single(mut c) => del_if_owner(&mut c, &key, owner).await,
                        Conn::Cluster(mut c) => del_if_owner(&mut c, &key, owner).await,
                        Conn::Sentinel(mut c) => {
                            self.forget(del_if_owner(&mut c, &key, owner).await)
                        }
                    }
                })
                .await;
            // Left, the lock holds until it expires (the next refresh of that session waits
            // for it). An ACL without scripting refuses EVAL every time: say so once.
            static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if let Err(e) = unlocked {
                if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot release a refresh lock in Redis (the user needs EVAL, @scripting); it lapses after its time instead");
                }
            }
        }

        pub async fn ping(&self) -> Result<(), StoreError> {
            self.within(async {
                let mut ping = redis::cmd("PING");
                let ping = ping.arg("ssogate");
                let answer: Result<String, _> = match self.conn().await? {
                    Conn::Single(mut c) => ping.query_async(&mut c).await,
                    Conn::Cluster(mut c) => ping.query_async(&mut c).await,
                    Conn::Sentinel(mut c) => ping.query_async(&mut c).await,
                };
                self.forget(answer.map(|_| ()).map_err(unavailable))
            })
            .await
        }
    }

    // Lives on the stack for one command; boxing would allocate for nothing.
    #[allow(clippy::large_enum_variant)]
    enum Conn {
        Single(ConnectionManager),
        Cluster(ClusterConnection),
        Sentinel(MultiplexedConnection),
    }

    async fn get<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        c.get(key).await.map_err(unavailable)
    }

    /// SET EX the record; with `index` (set key, id, ttl), SADD the id to it and renew its
    /// time. One round trip: the record and the filing go out together, as two requests (in
    /// a cluster the two keys may live on different nodes; SADD and EXPIRE share a key, so a
    /// node, and go as one pipeline). A filing without its record is harmless: `end_all`
    /// skips ids whose record is gone.
    async fn put<C: ConnectionLike + Send + Clone>(
        c: &mut C,
        key: &str,
        json: &str,
        ttl_secs: u64,
        index: Option<(&str, &str, u64)>,
    ) -> Result<(), StoreError> {
        let Some((set, id, ttl)) = index else {
            return c.set_ex(key, json, ttl_secs).await.map_err(unavailable);
        };
        let mut filing = c.clone();
        let mut file = redis::pipe();
        file.sadd(set, id).ignore().expire(set, ttl as i64).ignore();
        let (record, filed) = tokio::join!(
            c.set_ex::<_, _, ()>(key, json, ttl_secs),
            file.query_async::<()>(&mut filing),
        );
        record.map_err(unavailable)?;
        filed.map_err(unavailable)
    }

    /// Deletes each session whose id is in the set `index` (some may be gone already: signed
    /// out, expired), then the set; how many records were deleted.
    async fn end_all<C: ConnectionLike + Send>(
        c: &mut C,
        index: &str,
        prefix: &str,
    ) -> Result<usize, StoreError> {
        let ids: Vec<String> = c.smembers(index).await.map_err(unavailable)?;
        let mut ended = 0;
        for id in &ids {
            let deleted: usize = c.del(format!("{prefix}{id}")).await.map_err(unavailable)?;
            ended += deleted;
        }
        c.del::<_, ()>(index).await.map_err(unavailable)?;
        Ok(ended)
    }

    /// SET ... XX: only over a key that exists; whether it did.
    async fn set_xx<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
        json: &str,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("EX")
            .arg(ttl_secs)
            .arg("XX")
            .query_async(c)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn del<C: ConnectionLike + Send>(c: &mut C, key: &str) -> Result<(), StoreError> {
        c.del::<_, ()>(key).await.map_err(unavailable)
    }

    /// DEL `key` only while it still holds `owner` (compare and delete in one script, as the
    /// Redis docs' single-instance lock does).
    async fn del_if_owner<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        // EVAL, not EVALSHA: one short script per refresh, and the cluster client routes
        // EVAL by its key.
        redis::cmd("EVAL")
            .arg(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            )
            .arg(1)
            .arg(key)
            .arg(owner)
            .query_async::<i64>(c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn set_nx<C: ConnectionLike + Send>(
        c: &mut C,
        key: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(owner)
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
        use std::sync::{Arc, Mutex};

        use redis::{Arg, Cmd, Pipeline, RedisFuture, Value};

        /// A connection that answers only once `together`'s count of requests are under way
        /// (and notes what each asked): requests sent one after the other never finish.
        #[derive(Clone)]
        struct AllAtOnce {
            asked: Arc<Mutex<Vec<Vec<String>>>>,
            together: Arc<tokio::sync::Barrier>,
        }

        fn words(cmd: &Cmd) -> String {
            cmd.args_iter()
                .map(|a| match a {
                    Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                    Arg::Cursor => "<cursor>".into(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }

        impl redis::aio::ConnectionLike for AllAtOnce {
            fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
                self.asked.lock().unwrap().push(vec![words(cmd)]);
                Box::pin(async move {
                    self.together.wait().await;
                    Ok(Value::Okay)
                })
            }

            fn req_packed_commands<'a>(
                &'a mut self,
                pipe: &'a Pipeline,
                _offset: usize,
                count: usize,
            ) -> RedisFuture<'a, Vec<Value>> {
                self.asked
                    .lock()
                    .unwrap()
                    .push(pipe.cmd_iter().map(words).collect());
                Box::pin(async move {
                    self.together.wait().await;
                    Ok(vec![Value::Int(1); count])
                })
            }

            fn get_db(&self) -> i64 {
                0
            }
        }

        #[tokio::test]
        async fn a_new_session_is_stored_and_filed_in_one_round_trip() {
            let mut c = AllAtOnce {
                asked: Default::default(),
                together: Arc::new(tokio::sync::Barrier::new(2)),
            };
            let put = super::put(
                &mut c,
                "ssogate:abc",
                "{}",
                60,
                Some(("ssogate:user:alice", "abc", 3600)),
            );
            tokio::time::timeout(std::time::Duration::from_secs(5), put)
                .await
                .expect("the filing waited for the record's answer: two round trips")
                .expect("stored");
            let mut asked = c.asked.lock().unwrap().clone();
            asked.sort();
            assert_eq!(
                asked,
                vec![
                    vec![
                        "SADD ssogate:user:alice abc",
                        "EXPIRE ssogate:user:alice 3600"
                    ],
                    vec!["SETEX ssogate:abc 60 {}"],
                ]
            );
        }

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

        #[test]
        fn sentinel_urls_name_the_sentinels_service_and_db() {
            let (nodes, service, db) =
                super::sentinel_parts("redis+sentinel://a:26379,b:26380/mymaster/2").unwrap();
            assert_eq!(nodes, vec!["redis://a:26379", "redis://b:26380"]);
            assert_eq!((service.as_str(), db), ("mymaster", 2));
            assert!(
                super::sentinel_parts("redis+sentinel://a:26379").is_none(),
                "the service is required"
            );
        }
    }
}
