//! Prints the OpenAPI document generated from the types:
//! `cargo run -p idprov-server --example openapi > docs/openapi.json`.

fn main() {
    print!("{}", idprov_server::routes::api_doc::document());
}
