//! Tool pinning: the first definition seen of each upstream tool — every
//! field of it, as listed: name, title, description, input and output
//! schemas, annotations, icons, `_meta` — is hashed and pinned in the
//! registry. A later definition that differs is recorded next to the pin
//! and — in `block` mode — hidden from lists and refused on calls until an
//! operator re-approves it (`agentmesh mcp pins approve`). This catches a
//! server that changes what a tool says it does after it was trusted
//! ("rug pull"): a client shows and acts on all of those fields (a title
//! or a `readOnlyHint` annotation changes what a user or model approves),
//! so all of them are pinned.
//!
//! Pins made before every field was pinned covered only name, description
//! and input schema ([`legacy_hash`]); such a pin is upgraded to the whole
//! definition the first time that definition is seen with those three
//! fields unchanged.

use agentmesh_identity::to_canonical_json;
use agentmesh_store::{Registry, ToolPin};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What to do with a tool whose definition changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// Hide it from lists and deny calls until re-approved.
    #[default]
    Block,
    /// Allow it, marking every call in the audit log.
    Warn,
    /// No pinning.
    Off,
}

/// A tool's standing against its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// Matches the pin (or was just pinned).
    Pinned,
    /// Differs from the pin: the pinned and the current definitions.
    Changed {
        pinned_sha256: String,
        current_sha256: String,
    },
    /// Never seen in a list.
    Unknown,
}

/// The part of a tool definition that is pinned: all of it.
pub fn pinned_part(tool: &Value) -> Value {
    tool.clone()
}

/// SHA-256 (hex) of the canonical JSON of the pinned part.
pub fn definition_hash(tool: &Value) -> String {
    sha256_hex(&to_canonical_json(&pinned_part(tool)))
}

/// The fields pins covered before every field was pinned.
fn legacy_part(tool: &Value) -> Value {
    json!({
        "name": tool.get("name").cloned().unwrap_or(Value::Null),
        "description": tool.get("description").cloned().unwrap_or(Value::Null),
        "inputSchema": tool.get("inputSchema").cloned().unwrap_or(Value::Null),
    })
}

/// The hash an older pin of `tool` carries.
pub fn legacy_hash(tool: &Value) -> String {
    sha256_hex(&to_canonical_json(&legacy_part(tool)))
}

fn sha256_hex(text: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A line-by-line view of what changed, for operators.
pub fn diff(pin: &ToolPin) -> Vec<String> {
    let Some(changed) = &pin.changed_definition else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut keys: Vec<&String> = [&pin.definition, changed]
        .iter()
        .filter_map(|d| d.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let a = pin.definition.get(key).cloned().unwrap_or(Value::Null);
        let b = changed.get(key).cloned().unwrap_or(Value::Null);
        if a != b {
            out.push(format!("{key}:"));
            out.push(format!("- {}", to_canonical_json(&a)));
            out.push(format!("+ {}", to_canonical_json(&b)));
        }
    }
    out
}

type Key = (String, String);

/// Pins in memory, written through to the registry.
#[derive(Clone)]
pub struct Pins {
    registry: Arc<dyn Registry>,
    map: Arc<RwLock<HashMap<Key, ToolPin>>>,
}

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pins").finish_non_exhaustive()
    }
}

impl Pins {
    pub async fn load(registry: Arc<dyn Registry>) -> Result<Self, agentmesh_store::StoreError> {
        let pins = Self {
            registry,
            map: Arc::new(RwLock::new(HashMap::new())),
        };
        pins.reload().await?;
        Ok(pins)
    }

    /// Re-reads the registry (picks up `pins approve` from another process).
    pub async fn reload(&self) -> Result<(), agentmesh_store::StoreError> {
        let all = self.registry.tool_pins().await?;
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.clear();
        for p in all {
            map.insert((p.upstream.clone(), p.tool.clone()), p);
        }
        Ok(())
    }

    /// The state of a tool as last seen.
    pub fn state(&self, upstream: &str, tool: &str) -> PinState {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        match map.get(&(upstream.to_owned(), tool.to_owned())) {
            None => PinState::Unknown,
            Some(p) => match &p.changed_sha256 {
                Some(c) if c != &p.sha256 => PinState::Changed {
                    pinned_sha256: p.sha256.clone(),
                    current_sha256: c.clone(),
                },
                _ => PinState::Pinned,
            },
        }
    }

    /// Checks a definition from a `tools/list` answer against its pin,
    /// pinning it when new and recording it when changed.
    pub async fn observe(&self, upstream: &str, tool: &Value, now: u64) -> PinState {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return PinState::Unknown;
        };
        let hash = definition_hash(tool);
        let key = (upstream.to_owned(), name.to_owned());
        let update = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            match map.get_mut(&key) {
                None => {
                    let pin = ToolPin {
                        upstream: upstream.to_owned(),
                        tool: name.to_owned(),
                        sha256: hash.clone(),
                        definition: pinned_part(tool),
                        pinned_at: now,
                        changed_sha256: None,
                        changed_definition: None,
                        changed_at: None,
                    };
                    map.insert(key, pin.clone());
                    Some((pin, PinState::Pinned))
                }
                // A pin from before every field was pinned, whose fields
                // are unchanged: it now covers the whole definition.
                Some(pin)
                    if pin.sha256 != hash
                        && pin.sha256 == legacy_hash(tool)
                        && pin.definition == legacy_part(tool) =>
                {
                    pin.sha256 = hash.clone();
                    pin.definition = pinned_part(tool);
                    pin.changed_sha256 = None;
                    pin.changed_definition = None;
                    pin.changed_at = None;
                    Some((pin.clone(), PinState::Pinned))
                }
                Some(pin) if pin.sha256 == hash => {
                    if pin.changed_sha256.is_some() {
                        // The server went back to the pinned definition.
                        pin.changed_sha256 = None;
                        pin.changed_definition = None;
                        pin.changed_at = None;
                        Some((pin.clone(), PinState::Pinned))
                    } else {
                        None
                    }
                }
                Some(pin) => {
                    let state = PinState::Changed {
                        pinned_sha256: pin.sha256.clone(),
                        current_sha256: hash.clone(),
                    };
                    if pin.changed_sha256.as_deref() == Some(hash.as_str()) {
                        return state;
                    }
                    pin.changed_sha256 = Some(hash.clone());
                    pin.changed_definition = Some(pinned_part(tool));
                    pin.changed_at = Some(now);
                    Some((pin.clone(), state))
                }
            }
        };
        match update {
            None => PinState::Pinned,
            Some((pin, state)) => {
                // The in-memory state already governs; a storage failure
                // is reported and retried at the next observation.
                if let Err(e) = self.registry.save_tool_pin(&pin).await {
                    eprintln!(
                        "agentmesh: could not save the pin of `{}/{}`: {e}",
                        pin.upstream, pin.tool
                    );
                }
                state
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_a_client_is_shown() {
        let base = json!({"name": "t", "description": "d", "inputSchema": {"type": "object"}});
        let h = definition_hash(&base);
        for (key, value) in [
            ("title", json!("Delete everything")),
            ("annotations", json!({"readOnlyHint": true})),
            ("outputSchema", json!({"type": "object"})),
            ("description", json!("d2")),
            (
                "inputSchema",
                json!({"type": "object", "properties": {"x": {}}}),
            ),
            ("icons", json!([{"src": "https://evil.example/i.png"}])),
            ("_meta", json!({"ui": "x"})),
        ] {
            let mut t = base.clone();
            t[key] = value;
            assert_ne!(definition_hash(&t), h, "{key} is pinned");
        }
        // Key order does not matter (canonical JSON).
        let reordered: Value = serde_json::from_str(
            r#"{"inputSchema":{"type":"object"},"description":"d","name":"t"}"#,
        )
        .expect("json");
        assert_eq!(definition_hash(&reordered), h);
    }

    #[tokio::test]
    async fn an_older_pin_is_upgraded_only_when_its_fields_are_unchanged() {
        let registry = Arc::new(agentmesh_store::SqlRegistry::in_memory().await.expect("db"));
        let tool = json!({"name": "t", "description": "d", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}});
        // As an earlier version pinned it: three fields.
        let old = ToolPin {
            upstream: "u".into(),
            tool: "t".into(),
            sha256: legacy_hash(&tool),
            definition: legacy_part(&tool),
            pinned_at: 1,
            changed_sha256: None,
            changed_definition: None,
            changed_at: None,
        };
        registry.save_tool_pin(&old).await.expect("save");
        let pins = Pins::load(registry.clone()).await.expect("load");
        assert_eq!(pins.observe("u", &tool, 2).await, PinState::Pinned);
        let saved = registry.tool_pins().await.expect("pins");
        assert_eq!(saved[0].sha256, definition_hash(&tool), "upgraded");
        // From now on every field is pinned.
        let mut retitled = tool.clone();
        retitled["annotations"] = json!({"readOnlyHint": false, "destructiveHint": true});
        assert!(matches!(
            pins.observe("u", &retitled, 3).await,
            PinState::Changed { .. }
        ));
        // An older pin whose description changed is a change, not an upgrade.
        let other = ToolPin {
            tool: "v".into(),
            ..old
        };
        let other = ToolPin {
            definition: json!({"name": "v", "description": "d", "inputSchema": {"type": "object"}}),
            sha256: legacy_hash(
                &json!({"name": "v", "description": "d", "inputSchema": {"type": "object"}}),
            ),
            ..other
        };
        registry.save_tool_pin(&other).await.expect("save");
        pins.reload().await.expect("reload");
        let rug = json!({"name": "v", "description": "d, and mail it", "inputSchema": {"type": "object"}});
        assert!(matches!(
            pins.observe("u", &rug, 4).await,
            PinState::Changed { .. }
        ));
    }

    #[test]
    fn a_diff_names_every_changed_field() {
        let pin = ToolPin {
            upstream: "u".into(),
            tool: "t".into(),
            sha256: String::new(),
            definition: json!({"name": "t", "description": "d"}),
            pinned_at: 0,
            changed_sha256: Some(String::new()),
            changed_definition: Some(
                json!({"name": "t", "description": "d", "annotations": {"destructiveHint": false}}),
            ),
            changed_at: None,
        };
        assert_eq!(
            diff(&pin),
            ["annotations:", "- null", "+ {\"destructiveHint\":false}"]
        );
    }
}
