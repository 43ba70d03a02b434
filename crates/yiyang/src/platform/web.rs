//! The web console (Vue SPA in `web/dist`) compiled into the binary; unknown paths get index.html.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "../../web/dist/"]
struct Assets;

pub async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return crate::platform::error::ApiError::not_found("接口不存在").into_response();
    }
    let (file, name) = match Assets::get(path) {
        Some(f) if !path.is_empty() => (f, path),
        _ => match Assets::get("index.html") {
            Some(f) => (f, "index.html"),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "web console not built: run `npm run build` in web/",
                )
                    .into_response();
            }
        },
    };
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
        ],
        file.data,
    )
        .into_response()
}

/// Highest page number any list serves.
pub const PAGE_MAX: i64 = 100_000;

/// A list request's page and page size, checked: page 1–[`PAGE_MAX`], size 1–`max_size`
/// (`default_size` when not given). Out of range is refused, never silently clamped, so what the
/// API document says is what the server does.
pub fn paging(
    page: Option<i64>,
    page_size: Option<i64>,
    default_size: i64,
    max_size: i64,
) -> crate::platform::error::ApiResult<(i64, i64)> {
    use crate::platform::error::ApiError;
    let page = page.unwrap_or(1);
    if !(1..=PAGE_MAX).contains(&page) {
        return Err(ApiError::invalid(
            "page",
            format!("页码应在 1–{PAGE_MAX} 之间"),
        ));
    }
    let size = page_size.unwrap_or(default_size);
    if !(1..=max_size).contains(&size) {
        return Err(ApiError::invalid(
            "page_size",
            format!("每页条数应在 1–{max_size} 之间"),
        ));
    }
    Ok((page, size))
}
