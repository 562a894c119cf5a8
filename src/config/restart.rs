//! Which keys a config reload may change and which take a restart, decided by comparing two
//! validated configs as they were written (file and environment, merged). Names keys, never
//! values: a changed secret is reported as `session.secret`, not shown.
//!
//! Only `[[routes]]` and `logging.access_log` are read per request from the reloadable
//! snapshot (`server::snapshot`); everything else is read by parts built once at start (the
//! listeners, the workers, `Auth` with the provider, sessions and signer), so a change to it
//! is refused as a whole rather than half applied.

use serde_json::{Map, Value};

use super::Config;

/// The keys a reload applies: whole top-level sections (`routes`) or `section.key`.
const RELOADABLE: [&str; 2] = ["routes", "logging.access_log"];

impl Config {
    /// Whether `new` says exactly what this config says (comments and layout aside).
    pub fn same_as(&self, new: &Config) -> bool {
        written(self) == written(new)
    }

    /// The keys (`server.listen`, `provider`, `session.secret`...) that differ in `new` and
    /// that only a restart applies, sorted; empty when a reload can apply `new` whole.
    pub fn restart_keys(&self, new: &Config) -> Vec<String> {
        let (old, new) = (written(self), written(new));
        let mut changed = Vec::new();
        for section in union(&old, &new) {
            if RELOADABLE.contains(&section.as_str()) {
                continue;
            }
            let (a, b) = (present(old.get(&section)), present(new.get(&section)));
            match (a, b) {
                (Some(Value::Object(a)), Some(Value::Object(b))) => {
                    for key in union(a, b) {
                        let name = format!("{section}.{key}");
                        if !RELOADABLE.contains(&name.as_str())
                            && present(a.get(&key)) != present(b.get(&key))
                        {
                            changed.push(name);
                        }
                    }
                }
                (a, b) if a != b => changed.push(section),
                _ => {}
            }
        }
        changed.sort();
        changed
    }
}

/// The config as written, as a JSON tree (absent and unset keys alike are `null`).
fn written(config: &Config) -> Map<String, Value> {
    match serde_json::to_value(&*config.raw) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A key left out and a key written as nothing are the same.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// Every key of either table, each once.
fn union(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = a.keys().cloned().collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoEnv;

    fn config(listen: &str, prefix: &str, extra: &str) -> Config {
        let toml = format!(
            "[server]\nlisten = \"{listen}\"\n{extra}\n[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n"
        );
        Config::from_toml_str(&toml, &NoEnv).expect("valid")
    }

    #[test]
    fn routes_and_the_access_log_reload_the_rest_takes_a_restart() {
        let old = config("127.0.0.1:4180", "/", "");
        assert!(old.same_as(&config("127.0.0.1:4180", "/", "")));
        let routes = config("127.0.0.1:4180", "/app", "[logging]\naccess_log = false\n");
        assert!(!old.same_as(&routes));
        assert!(old.restart_keys(&routes).is_empty());

        let moved = config("127.0.0.1:4181", "/app", "workers = 2\n");
        assert_eq!(
            old.restart_keys(&moved),
            vec!["server.listen".to_string(), "server.workers".to_string()]
        );
        let metrics = config(
            "127.0.0.1:4180",
            "/",
            "[metrics]\nlisten = \"127.0.0.1:9090\"\n",
        );
        assert_eq!(old.restart_keys(&metrics), vec!["metrics".to_string()]);
    }
}
