//! The part of the config a request reads (routes with their rules and public paths, the
//! upstreams, the inbound filter, the access-log switch), built whole from one validated
//! config and swapped whole by a reload (`reload.rs`). Never reads files or decides whether a
//! config may be applied; never touches sessions or the provider (`Auth` is built once).
//!
//! A request takes its worker's `View` once, at its start, and keeps it to its end: a reload
//! never changes the routes, upstreams or pools under a request in flight, and the next
//! request sees the new snapshot. Taking the view costs a thread-local look, one atomic load
//! of a line that only a reload writes, and a reference count on this worker's own `View`
//! (never on a count that all workers share).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::ServerError;
use crate::config::Config;
use crate::identity::InboundFilter;
use crate::policy::RouteTable;
use crate::proxy::{Proxy, Upstream};

/// Everything per request that a reload may change, from one config.
pub(crate) struct Snapshot {
    /// Counts reloads applied: 0 for the config the gateway started with.
    generation: u64,
    /// The config this was built from. Only its routes (`max_body`) are read per request;
    /// the rest is the start's (`Gateway::config`), or a reload is refused.
    pub config: Arc<Config>,
    pub routes: RouteTable,
    /// By route id (`Route::id`), as the routes of this snapshot number them.
    pub upstreams: Vec<Upstream>,
    pub filter: InboundFilter,
    /// `logging.access_log`.
    pub access_log: bool,
}

impl Snapshot {
    fn build(config: Arc<Config>, generation: u64) -> Result<Snapshot, ServerError> {
        let upstreams = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Upstream::from_url(&r.upstream, index)
                    .map_err(|reason| ServerError::Upstream { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            generation,
            routes: RouteTable::from_config(&config),
            upstreams,
            filter: InboundFilter::from_config(&config),
            access_log: config.logging.access_log,
            config,
        })
    }
}

/// What one request uses: the snapshot, and this worker's client with inline pools made for
/// the snapshot's upstreams (a pool is picked by route id, which a reload renumbers).
pub(crate) struct View {
    owner: u64,
    pub snap: Arc<Snapshot>,
    pub proxy: Proxy,
}

/// The current snapshot, swapped whole by a reload.
pub(crate) struct Live {
    current: ArcSwap<Snapshot>,
    /// The current snapshot's generation, stored after it: what each request compares its
    /// worker's view with.
    generation: AtomicU64,
    /// Tells one gateway's views apart from another's on the same thread (tests build several).
    owner: u64,
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's (worker's) view of the snapshot it served last.
    static VIEW: RefCell<Option<Arc<View>>> = const { RefCell::new(None) };
}

impl Live {
    /// The snapshot of the config the gateway starts with.
    pub(crate) fn new(config: Arc<Config>) -> Result<Live, ServerError> {
        Ok(Live {
            current: ArcSwap::from_pointee(Snapshot::build(config, 0)?),
            generation: AtomicU64::new(0),
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The current snapshot (for a reload to compare with; requests use `view`).
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Builds the snapshot of `config` and makes it the current one: requests that start
    /// from now on use it. Only one task reloads, so generations never race. Returns the new
    /// generation.
    pub(crate) fn replace(&self, config: Arc<Config>) -> Result<u64, ServerError> {
        let generation = self.generation.load(Ordering::Acquire) + 1;
        let snap = Snapshot::build(config, generation)?;
        self.current.store(Arc::new(snap));
        self.generation.store(generation, Ordering::Release);
        Ok(generation)
    }

    /// The view a request keeps to its end: this thread's, while it shows the current
    /// snapshot; else a new one, with `proxy`'s client and fresh inline pools.
    pub(crate) fn view(&self, proxy: &Proxy) -> Arc<View> {
        let generation = self.generation.load(Ordering::Acquire);
        VIEW.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some(view) = slot
                .as_ref()
                .filter(|v| v.owner == self.owner && v.snap.generation == generation)
            {
                return view.clone();
            }
            let snap = self.current.load_full();
            let view = Arc::new(View {
                owner: self.owner,
                proxy: proxy.with_pools(snap.upstreams.len()),
                snap,
            });
            // The view it replaces goes when the last request using it ends (and its pools'
            // idle connections with it).
            *slot = Some(view.clone());
            view
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoEnv;

    fn config(prefixes: &[&str]) -> Arc<Config> {
        let mut toml = "[server]\nlisten = \"127.0.0.1:4180\"\n".to_string();
        for p in prefixes {
            toml.push_str(&format!(
                "[[routes]]\npath_prefix = \"{p}\"\nupstream = \"http://127.0.0.1:9{p}\"\npublic = true\n"
            ));
        }
        Arc::new(Config::from_toml_str(&toml, &NoEnv).expect("valid"))
    }

    fn proxy() -> Proxy {
        let c = config(&["/"]);
        Proxy::new(&c.upstream, crate::server::body_rate(&c), 0).expect("client")
    }

    fn names(view: &View) -> Vec<String> {
        view.snap
            .routes
            .routes()
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    #[test]
    fn a_request_keeps_its_view_and_the_next_one_sees_the_new_snapshot() {
        let live = Live::new(config(&["/"])).expect("snapshot");
        let proxy = proxy();
        let first = live.view(&proxy);
        assert!(
            Arc::ptr_eq(&first, &live.view(&proxy)),
            "one view per worker"
        );
        assert_eq!(names(&first), ["/"]);

        assert_eq!(live.replace(config(&["/b", "/a"])).expect("replaced"), 1);
        let second = live.view(&proxy);
        assert_eq!(names(&second), ["/b", "/a"]);
        assert_eq!(second.snap.upstreams.len(), 2);
        // The request that took the first view still has all of it, pools included.
        assert_eq!(names(&first), ["/"]);
        assert_eq!(first.snap.upstreams.len(), 1);
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn two_gateways_on_one_thread_do_not_share_a_view() {
        let (one, two) = (
            Live::new(config(&["/one"])).expect("snapshot"),
            Live::new(config(&["/two"])).expect("snapshot"),
        );
        let proxy = proxy();
        assert_eq!(names(&one.view(&proxy)), ["/one"]);
        assert_eq!(names(&two.view(&proxy)), ["/two"]);
        assert_eq!(names(&one.view(&proxy)), ["/one"]);
    }
}
