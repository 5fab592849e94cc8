//! The dashboard's script and stylesheet, compiled into the binary and served under names that carry a
//! hash of their content, so that browsers may keep them for a year and still never run a stale copy
//! after an upgrade: a changed file has a new name.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// One embedded file and the name it is served under.
struct Asset {
    name: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
    Asset { name: format!("{stem}.{hash}.{ext}"), body, content_type }
}

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            asset("app", "js", APP_JS, "text/javascript; charset=utf-8"),
            asset("app", "css", APP_CSS, "text/css; charset=utf-8"),
        ]
    })
}

/// The URL of the dashboard's script.
pub fn js_url() -> String {
    format!("/assets/{}", assets()[0].name)
}

/// The URL of the dashboard's stylesheet.
pub fn css_url() -> String {
    format!("/assets/{}", assets()[1].name)
}

/// `GET /assets/{file}`: a hashed name is cached for a year; the plain `app.js` and `app.css` are
/// served too (for people reading the source), revalidated on every use.
pub async fn get_asset(Path(file): Path<String>) -> Response {
    let [js, css] = assets();
    let (found, immutable) = match file.as_str() {
        "app.js" => (Some(js), false),
        "app.css" => (Some(css), false),
        name => (assets().iter().find(|a| a.name == name), true),
    };
    let Some(asset) = found else {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "no such asset").into_response();
    };
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_carry_their_content_hash() {
        let js = js_url();
        assert!(
            js.starts_with("/assets/app.") && js.ends_with(".js") && js.len() == "/assets/app..js".len() + 12,
            "{js}"
        );
        assert_ne!(js_url().trim_end_matches(".js"), css_url().trim_end_matches(".css"));
    }
}
