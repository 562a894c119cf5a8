//! Config reload without a restart: at SIGHUP, and when the config file's bytes change
//! (looked at every `server.secret_poll_interval`: Kubernetes swaps a mounted ConfigMap by
//! symlink, which file events miss). The new file is loaded and validated as at start; a
//! valid one that changes only what the snapshot holds (`config::restart`) is swapped in
//! whole (`snapshot::Live::replace`). Anything else is refused, logged and counted, and the
//! current config keeps serving. Never touches sessions, the provider or the listeners.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Gateway;
use crate::config::{Config, ConfigErrors, ProcessSource};

/// What one look at the config file came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Applied,
    Unchanged,
    Refused,
}

/// Watches `path` from now on, on the current runtime.
pub(super) fn watch(gateway: Arc<Gateway>, path: PathBuf) {
    let every = gateway.config.server.secret_poll_interval;
    tokio::spawn(async move {
        // Once now: the file may have changed since `serve` loaded it.
        let mut seen = fingerprint(&path);
        look(&gateway, &path, "file changed since start").await;
        loop {
            let asked = next_look(every, &gateway.reload_asked).await;
            let now = fingerprint(&path);
            if !asked && now == seen {
                continue;
            }
            seen = now;
            look(&gateway, &path, if asked { SIGHUP } else { "file changed" }).await;
        }
    });
}

const SIGHUP: &str = "SIGHUP";

/// Loads the file (off the runtime: it reads files) and reloads from it.
async fn look(gateway: &Gateway, path: &Path, trigger: &'static str) {
    let file = path.to_path_buf();
    match tokio::task::spawn_blocking(move || Config::load(&file, &ProcessSource)).await {
        Ok(loaded) => {
            reload(gateway, path, trigger, loaded);
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the config file failed; the current config keeps serving")
        }
    }
}

/// Waits for the next look: `every` has passed (false) or SIGHUP asked (true). With `every`
/// zero the file is not polled, only read at SIGHUP.
async fn next_look(every: Duration, asked: &tokio::sync::Notify) -> bool {
    if every.is_zero() {
        asked.notified().await;
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(every) => false,
        () = asked.notified() => true,
    }
}

/// A hash of the file's bytes; `None` while it cannot be read (a ConfigMap being swapped).
fn fingerprint(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// Applies `loaded` if it is valid and changes only what a reload may change; else logs
/// why not (each error at warn, with the file) and keeps the current config.
pub(crate) fn reload(
    gw: &Gateway,
    path: &Path,
    trigger: &str,
    loaded: Result<Config, ConfigErrors>,
) -> Outcome {
    let file = path.display();
    let refused = || {
        gw.metrics.config_reloads_refused.add(1);
        Outcome::Refused
    };
    let new = match loaded {
        Ok(new) => new,
        Err(errors) => {
            for e in &errors.0 {
                tracing::warn!(file = %file, trigger, error = %e, "config reload refused: the new config is not valid; the current config keeps serving");
            }
            return refused();
        }
    };
    if gw.live.current().config.same_as(&new) {
        // Said only when asked: a poll that saw an edited comment stays quiet.
        if trigger == SIGHUP {
            tracing::info!(file = %file, trigger, "config file unchanged: nothing to reload");
        }
        return Outcome::Unchanged;
    }
    // Compared with the start's config: that is what the listeners, workers, sessions and
    // provider still run with.
    let restart = gw.config.restart_keys(&new);
    if !restart.is_empty() {
        let keys = restart.join(", ");
        tracing::warn!(file = %file, trigger, keys = %keys, "config reload refused: {keys} changed, which takes a restart; nothing of the new config was applied, the current config keeps serving");
        return refused();
    }
    let routes = new.routes.len();
    let warnings = new.warnings();
    match gw.live.replace(Arc::new(new)) {
        Ok(generation) => {
            gw.metrics.config_reloads_applied.add(1);
            tracing::info!(file = %file, trigger, generation, routes, "config reloaded: new requests use the new routes; requests in flight finish on the old ones");
            for warning in warnings {
                tracing::warn!(file = %file, "{warning}");
            }
            Outcome::Applied
        }
        Err(e) => {
            tracing::warn!(file = %file, trigger, error = %e, "config reload refused; the current config keeps serving");
            refused()
        }
    }
}
