//! `GET /idprov/directory`: endpoints, the CA chain (base64 of PEM), services.

use axum::extract::State;
use axum::response::Response;

use crate::routes::json_bytes;
use crate::state::AppState;

pub(crate) async fn get(State(app): State<AppState>) -> Response {
    json_bytes(app.directory_json.clone())
}
