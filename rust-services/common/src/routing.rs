//! Method guards with an explicit 405.
//!
//! axum answers `HEAD` with the `GET` handler and writes its own 405 body;
//! the Go twins use exact method matching and the shared JSON error. These
//! helpers make a route accept exactly one method and answer every other one
//! (including `HEAD`) with [`ApiError::method_not_allowed`].

use axum::handler::Handler;
use axum::routing::{self, MethodRouter};

use crate::ApiError;

/// A route that serves only `GET`.
pub fn get_only<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    routing::get(handler)
        .head(|| async { ApiError::method_not_allowed("GET") })
        .fallback(|| async { ApiError::method_not_allowed("GET") })
}

/// A route that serves only `POST`.
pub fn post_only<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    routing::post(handler).fallback(|| async { ApiError::method_not_allowed("POST") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use axum::Router;
    use tower::ServiceExt;

    async fn status_of(router: Router, method: Method) -> (StatusCode, Option<String>) {
        let response = router
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri("/x")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), allow)
    }

    #[tokio::test]
    async fn get_only_rejects_head_like_any_other_method() {
        let router = Router::new().route("/x", get_only(|| async { "ok" }));
        assert_eq!(
            status_of(router.clone(), Method::GET).await.0,
            StatusCode::OK
        );
        assert_eq!(
            status_of(router.clone(), Method::HEAD).await,
            (StatusCode::METHOD_NOT_ALLOWED, Some("GET".into()))
        );
        assert_eq!(
            status_of(router, Method::DELETE).await,
            (StatusCode::METHOD_NOT_ALLOWED, Some("GET".into()))
        );
    }

    #[tokio::test]
    async fn post_only_answers_405_with_allow_post() {
        let router = Router::new().route("/x", post_only(|| async { "ok" }));
        assert_eq!(
            status_of(router.clone(), Method::POST).await.0,
            StatusCode::OK
        );
        assert_eq!(
            status_of(router, Method::GET).await,
            (StatusCode::METHOD_NOT_ALLOWED, Some("POST".into()))
        );
    }
}
