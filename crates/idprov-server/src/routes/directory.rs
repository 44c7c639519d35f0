//! `GET /idprov/directory`: endpoints, the CA chain (base64 of PEM), services.

use axum::extract::State;
use axum::response::Response;

use crate::routes::json_bytes;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/idprov/directory",
    operation_id = "directory",
    tag = "protocol",
    summary = "The directory: endpoints, the CA chain (base64 of PEM), services",
    security(()),
    responses((status = 200, description = "Directory", body = idprov_proto::Directory)),
)]
pub(crate) async fn get(State(app): State<AppState>) -> Response {
    json_bytes(app.directory_json.clone())
}
