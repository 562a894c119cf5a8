use figment::value::{Dict, Value};
use serde::Serialize;

use super::raw::*;

fn fields_of<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Known fields of the table at `path` (`None`: any key is allowed, as in headers.claims).
fn known(path: &str) -> Option<Vec<String>> {
    Some(match path {
        "" => fields_of::<RawConfig>(),
        "server" => fields_of::<RawServer>(),
        "server.tls" => fields_of::<RawTls>(),
        "provider" | "providers" => fields_of::<RawProvider>(),
        "session" => fields_of::<RawSession>(),
        "access" => fields_of::<RawAccess>(),
        "routes" => fields_of::<RawRoute>(),
        "upstream" => fields_of::<RawUpstream>(),
        "headers" => fields_of::<RawHeaders>(),
        "logging" => fields_of::<RawLogging>(),
        "metrics" => fields_of::<RawMetrics>(),
        _ => return None,
    })
}

/// The document without unknown keys; their dotted names (and the nearest known key,
/// when one is a typo away) go to `unknown`.
pub fn strip(value: Value, unknown: &mut Vec<(String, Option<String>)>) -> Value {
    walk(value, "", "", unknown)
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn walk(
    value: Value,
    schema: &str,
    shown: &str,
    unknown: &mut Vec<(String, Option<String>)>,
) -> Value {
    match value {
        Value::Dict(tag, dict) => {
            let Some(fields) = known(schema) else {
                return Value::Dict(tag, dict);
            };
            let mut kept = Dict::new();
            for (k, v) in dict {
                let name = if shown.is_empty() {
                    k.clone()
                } else {
                    format!("{shown}.{k}")
                };
                if fields.contains(&k) {
                    let child = if schema.is_empty() {
                        k.clone()
                    } else {
                        format!("{schema}.{k}")
                    };
                    kept.insert(k, walk(v, &child, &name, unknown));
                } else {
                    let near = fields
                        .iter()
                        .filter(|f| distance(f, &k) <= 2)
                        .min_by_key(|f| distance(f, &k))
                        .cloned();
                    unknown.push((name, near));
                }
            }
            Value::Dict(tag, kept)
        }
        Value::Array(tag, items) => Value::Array(
            tag,
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| walk(v, schema, &format!("{shown}[{i}]"), unknown))
                .collect(),
        ),
        other => other,
    }
}
