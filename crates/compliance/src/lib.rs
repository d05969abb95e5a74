//! Compliance as data.
//!
//! * [`Catalogues`]: one YAML file per framework (EU AI Act, HIPAA, SOC 2,
//!   GDPR, OWASP Top 10 for Agentic Applications), built in and overridable;
//!   every classification and control cites its source article or section.
//! * [`Catalogues::evaluate`]: per framework, the action's classification,
//!   the controls it triggers and the obligations that act on it.
//! * [`apply`]: obligations acting on a policy decision (human oversight
//!   holds the call for approval, consent is required, arguments are
//!   restricted to the minimum necessary, the decision is marked for audit).
//! * [`report`]: per-control evidence, violations, approvals and gaps
//!   computed from the audit log, as JSON, Markdown or HTML.

#![forbid(unsafe_code)]

mod catalogue;
mod evaluate;
mod obligations;
pub mod report;

pub use catalogue::{
    BUILTIN, Catalogue, CatalogueError, Catalogues, Classification, Control, OBLIGATIONS, When,
};
pub use evaluate::{Context, Evaluation, FrameworkResult, UnknownFramework};
pub use obligations::{Applied, apply, context_for};
