//! Export formats: JSON Lines and CloudEvents 1.0 (structured mode).

use crate::store::StoredEntry;
use crate::tree::hex;
use serde_json::{Value, json};

/// One JSON Lines record: index, leaf hash and the entry.
pub fn jsonl_line(e: &StoredEntry) -> Value {
    json!({"index": e.index, "leaf_hash": hex(&e.leaf_hash), "entry": e.entry.to_json()})
}

/// A CloudEvents 1.0 event for an entry from the log named `origin`.
pub fn cloud_event(e: &StoredEntry, origin: &str) -> Value {
    let d = &e.entry.draft;
    let kind: String = d
        .event
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut ev = json!({
        "specversion": "1.0",
        "id": format!("{origin}/{}", e.index),
        "source": format!("agentmesh://{origin}"),
        "type": format!("dev.agentmesh.audit.{kind}"),
        "time": e.entry.time,
        "datacontenttype": "application/json",
        "agentmeshindex": e.index,
        "agentmeshleafhash": hex(&e.leaf_hash),
        "data": e.entry.to_json(),
    });
    if !d.agent.is_empty() {
        ev["subject"] = Value::String(d.agent.clone());
    }
    ev
}
