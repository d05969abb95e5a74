//! Helpers of the heavier routes: the bulk registration path and
//! compliance reports.

use crate::State;
use crate::error::{ApiError, ApiResult};
use agentmesh_audit::{AuditLog, rfc3339_millis};
use agentmesh_capability::Capability;
use agentmesh_identity::Did;
use agentmesh_store::AgentRecord;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) async fn build<'a>(
    state: &State,
    sponsor: &str,
    items: impl Iterator<Item = (&'a str, &'a str, &'a [String])>,
) -> ApiResult<Vec<AgentRecord>> {
    let s = state
        .mesh
        .registry()
        .sponsor_by_email(sponsor)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no sponsor `{sponsor}`")))?;
    let mut parsed = Vec::new();
    for (name, did, caps) in items {
        let did = Did::parse(did)
            .map_err(|e| ApiError::bad_request("bad_did", format!("agent `{name}`: {e}")))?;
        let key = did
            .public_key()
            .map_err(|e| ApiError::bad_request("bad_did", format!("agent `{name}`: {e}")))?;
        let caps: Vec<Capability> = caps
            .iter()
            .map(|c| {
                Capability::parse(c).map_err(|e| {
                    ApiError::bad_request("bad_capability", format!("agent `{name}`: `{c}`: {e}"))
                })
            })
            .collect::<Result<_, _>>()?;
        parsed.push((name, key, caps));
    }
    Ok(state
        .mesh
        .build_imports(&s, parsed.into_iter(), agentmesh_store::unix_now())?)
}

/// A compliance report per framework (or the one `framework` names) over
/// the whole log or the last `since_secs` seconds (JSON by default,
/// `format=markdown|html`).
pub(crate) fn compliance(
    log: &AuditLog,
    format: Option<&str>,
    framework: Option<&str>,
    since_secs: Option<u64>,
) -> ApiResult<Response> {
    let cats = agentmesh_compliance::Catalogues::builtin()
        .map_err(|e| ApiError::internal(format!("catalogues: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let from = since_secs.map_or(0, |s| {
        now.saturating_sub(u128::from(s).saturating_mul(1_000_000_000))
    });
    let (since, until) = (rfc3339_millis(from), rfc3339_millis(now + 1_000_000));
    let chosen: Vec<_> = match framework {
        None => cats.all().iter().collect(),
        Some(f) => vec![cats.get(f).ok_or_else(|| {
            ApiError::not_found(format!(
                "no framework `{f}` (known: {})",
                cats.all()
                    .iter()
                    .map(|c| c.framework.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?],
    };
    let mut reports = Vec::new();
    for cat in chosen {
        let r = agentmesh_compliance::report::build(log, cat, &since, &until, &mut |_, _| {})
            .map_err(|e| ApiError::unavailable(format!("audit: {e}")))?;
        reports.push(r);
    }
    let (body, ctype) = match format.unwrap_or("json") {
        "json" => (
            serde_json::json!({"reports": reports}).to_string(),
            "application/json",
        ),
        "markdown" => (
            reports
                .iter()
                .map(|r| r.to_markdown())
                .collect::<Vec<_>>()
                .join("\n\n"),
            "text/markdown; charset=utf-8",
        ),
        "html" => (
            reports
                .iter()
                .map(|r| r.to_html())
                .collect::<Vec<_>>()
                .join("\n"),
            "text/html; charset=utf-8",
        ),
        other => {
            return Err(ApiError::bad_request(
                "bad_format",
                format!("unknown format `{other}` (json, markdown, html)"),
            ));
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}
