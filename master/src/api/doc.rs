//! The OpenAPI document of the admin API, generated from the handlers' types. `master/openapi.json`
//! is this document, committed so that the UI's types can be generated from it without building
//! the server; a test keeps the file current (`UPDATE_OPENAPI=1` rewrites it).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{access_keys, dashboard, groups, keys, logs, route, schema, settings, system};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gpt-load admin API",
        version = "1.0.0",
        description = "The management API of gpt-load (GPT-Load compatible). Successes are \
            `{code:0, message, data?}`; errors are `{code:\"<CODE>\", message}` with the HTTP \
            status. Messages follow `Accept-Language` (zh-CN, en-US, ja-JP; Chinese by default). \
            Unknown `/api` paths answer `404 {\"error\":\"Not Found\"}`. The web UI's types are \
            generated from this document."
    ),
    servers((url = "/")),
    security(("bearerAuth" = [])),
    paths(
        system::health,
        system::login,
        system::integration_info,
        system::channel_types,
        system::task_status,
        groups::create,
        groups::list,
        groups::list_lite,
        groups::config_options,
        groups::reorder,
        groups::update,
        groups::delete,
        groups::stats,
        groups::copy,
        groups::discover_models,
        groups::sub_groups,
        groups::add_sub_groups,
        groups::update_sub_group_weight,
        groups::delete_sub_group,
        groups::parent_aggregates,
        keys::list,
        keys::export,
        keys::add_multiple,
        keys::add_async,
        keys::delete_multiple,
        keys::delete_async,
        keys::restore_multiple,
        keys::restore_all_invalid,
        keys::clear_all_invalid,
        keys::clear_all,
        keys::validate_group,
        keys::test_multiple,
        keys::update_notes,
        dashboard::stats,
        dashboard::chart,
        dashboard::encryption_status,
        logs::list,
        logs::export,
        settings::get,
        settings::update,
        access_keys::list,
        access_keys::create,
        access_keys::update,
        access_keys::delete,
        route::inspect,
    ),
    components(schemas(schema::ErrorResponse, schema::MessageResponse, settings::SettingsUpdate)),
    modifiers(&CommonAnswers)
)]
pub struct ApiDoc;

/// What every operation may answer besides its own: the error shapes, the security scheme.
struct CommonAnswers;

/// Status, the shared response's name, its description.
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Bad request, invalid JSON or a validation failure (`BAD_REQUEST`, `INVALID_JSON`, \
         `VALIDATION_FAILED`); `message` says what is wrong",
    ),
    (
        "401",
        "Unauthorized",
        "Missing or wrong admin key (`UNAUTHORIZED`)",
    ),
    ("404", "NotFound", "Not found (`NOT_FOUND`)"),
    (
        "409",
        "Conflict",
        "A duplicate name (`DUPLICATE_RESOURCE`) or another task is running (`TASK_IN_PROGRESS`)",
    ),
    (
        "429",
        "Throttled",
        "Too many failed authentications from this address; see `Retry-After`",
    ),
    (
        "500",
        "ServerError",
        "Internal or database error (`INTERNAL_SERVER_ERROR`, `DATABASE_ERROR`)",
    ),
];

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "AUTH_KEY. `X-Api-Key`, `X-Goog-Api-Key` and `?key=` are accepted too, \
                         but the UI never puts the key in a URL.",
                    ))
                    .build(),
            ),
        );
        for (_, name, description) in ERRORS {
            let content = ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorResponse"))))
                .build();
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content("application/json", content)
                        .build(),
                ),
            );
        }
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                // Operations without authentication say so with an empty requirement.
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
                for (status, name, _) in ERRORS {
                    let always = matches!(*status, "400" | "500")
                        || (!public && matches!(*status, "401" | "429"));
                    let shared = || RefOr::Ref(Ref::from_response_name(*name));
                    match op.responses.responses.get(*status) {
                        // An operation's own `(status = 404, body = ErrorResponse)` becomes the
                        // shared answer; one with its own description or body stays.
                        Some(RefOr::T(r)) if r.description.is_empty() => {
                            op.responses
                                .responses
                                .insert((*status).to_owned(), shared());
                        }
                        None if always => {
                            op.responses
                                .responses
                                .insert((*status).to_owned(), shared());
                        }
                        _ => {}
                    }
                }
                if let Some(RefOr::T(r)) = op.responses.responses.get_mut("200")
                    && r.description.is_empty()
                {
                    r.description = "Success".to_owned();
                }
            }
        }
    }
}

/// `GET /api/openapi.json`.
pub async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
        .into_response()
}

/// The document as pretty JSON with a final newline (the committed file's form).
pub fn json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    /// `master/openapi.json` is what the types say; `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let generated = super::json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "master/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p gpt-load-master \
             --lib api::doc` and `npm --prefix ui run gen`, and commit both"
        );
    }
}
