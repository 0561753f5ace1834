//! What the business rules answer when they refuse something: a kind and a message, with no HTTP
//! status and no language. The admin API maps the kind to a status and code and localises the
//! message once, when it writes the answer (`api::response`).

use crate::db::DbError;

/// A message for a person: a catalog id (with template values) localised later, or text that
/// is already final (details such as a serde error or an offending value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A message id of the catalog (`master/src/i18n/*.json`) and its template values.
    Id(&'static str, Vec<(&'static str, String)>),
    /// Text shown as is, in every language.
    Text(String),
}

impl Msg {
    /// A catalog message without template values.
    pub fn id(id: &'static str) -> Self {
        Msg::Id(id, Vec::new())
    }

    /// A catalog message with template values (`{{.name}}` in the catalog).
    pub fn with(id: &'static str, vars: &[(&'static str, &str)]) -> Self {
        Msg::Id(
            id,
            vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        )
    }

    /// Final text.
    pub fn text(text: impl Into<String>) -> Self {
        Msg::Text(text.into())
    }
}

/// Why a service refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A value breaks a rule (GPT-Load's `VALIDATION_FAILED`).
    #[error("invalid: {0:?}")]
    Invalid(Msg),
    /// The request is malformed in a way a rule does not name (`BAD_REQUEST`).
    #[error("bad request: {0:?}")]
    BadRequest(Msg),
    /// The thing the request names does not exist.
    #[error("not found: {0:?}")]
    NotFound(Msg),
    /// A name already taken.
    #[error("duplicate")]
    Duplicate,
    /// Another task runs, or there is nothing for the task to do.
    #[error("busy: {0:?}")]
    Busy(Msg),
    /// The store failed; logged where it happened, never shown.
    #[error("database error")]
    Database,
    /// A bug or an impossible state; never shown.
    #[error("internal error")]
    Internal,
}

impl ServiceError {
    pub fn invalid(id: &'static str) -> Self {
        ServiceError::Invalid(Msg::id(id))
    }

    pub fn invalid_with(id: &'static str, vars: &[(&'static str, &str)]) -> Self {
        ServiceError::Invalid(Msg::with(id, vars))
    }

    pub fn invalid_text(text: impl Into<String>) -> Self {
        ServiceError::Invalid(Msg::text(text))
    }

    /// The generic "resource not found".
    pub fn not_found() -> Self {
        ServiceError::NotFound(Msg::text("Resource not found"))
    }

    /// Another task holds the single task slot.
    pub fn task_running() -> Self {
        ServiceError::Busy(Msg::text("a task is already running, please wait"))
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ServiceError::not_found(),
            DbError::Duplicate => ServiceError::Duplicate,
            err @ (DbError::Other(_) | DbError::Sqlite(_)) => {
                // Logged once here; the client sees nothing internal.
                tracing::error!(error = %err, "database error");
                ServiceError::Database
            }
        }
    }
}
