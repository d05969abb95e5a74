//! The dashboard (`GET /`): one self-contained page — no build toolchain,
//! no external assets — that reads the same REST API with the admin token
//! (from the URL fragment `#token=…` or typed in; kept in session storage
//! only): agents with sponsor, status and trust; trust over time; the
//! delegation graph; live decisions; the audit log with a "verify proof"
//! that checks the inclusion proof and the checkpoint signature in the
//! browser; the approvals queue; a compliance summary.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("dashboard.html");

pub async fn page() -> Response {
    let mut r = PAGE.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Everything the page loads comes from this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline' 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}
