//! `parallax report serve DIR`: a finished run's directory over HTTP —
//! `report.html` (latency, the mismatches by JSON path), `results.json`,
//! goose's reports and anything else the run wrote — for a browser on
//! another machine or a colleague, read-only.
//!
//! Only regular files under DIR are served (paths are resolved and must
//! stay inside it; no listing beyond the run's own index), with the content
//! type of their extension and a `default-src 'self'` policy, on loopback
//! unless told otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum Report {
    /// Serve a run directory (report.html, results.json, goose reports).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The run directory, e.g. target/parallax-run.
    dir: PathBuf,
    /// Where to listen. Loopback by default: a run's samples may hold data.
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
}

pub fn run(report: &Report) -> anyhow::Result<()> {
    let Report::Serve(args) = report;
    let root = args.dir.canonicalize().with_context(|| {
        format!(
            "{} is not a directory this user can read",
            args.dir.display()
        )
    })?;
    anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
    if !root.join("report.html").is_file() && !root.join("results.json").is_file() {
        eprintln!(
            "warning: {} holds neither report.html nor results.json; serving it anyway",
            root.display()
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!("serving {} on http://{addr}/", root.display());
        let app = router(root);
        axum::serve(listener, app)
            .with_graceful_shutdown(parallax_common::server::signal())
            .await
            .context("the report server stopped")
    })
}

pub fn router(root: PathBuf) -> Router {
    let root = Arc::new(root);
    Router::new()
        .route("/", get(index))
        .route("/{*path}", get(file))
        .with_state(root)
}

async fn index(State(root): State<Arc<PathBuf>>) -> Response {
    if root.join("report.html").is_file() {
        return serve(&root, "report.html");
    }
    let mut names: Vec<String> = std::fs::read_dir(&*root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let items: String = names
        .iter()
        .map(|n| {
            format!(
                "<li><a href=\"/{0}\">{0}</a></li>",
                parallax_report::html::esc(n)
            )
        })
        .collect();
    page(
        StatusCode::OK,
        "text/html; charset=utf-8",
        format!("<!doctype html><meta charset=utf-8><title>Parallax run</title><ul>{items}</ul>")
            .into_bytes(),
    )
}

async fn file(State(root): State<Arc<PathBuf>>, UrlPath(path): UrlPath<String>) -> Response {
    serve(&root, &path)
}

fn serve(root: &Path, relative: &str) -> Response {
    let not_found = || {
        page(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"no such file in this run".to_vec(),
        )
    };
    // Resolved, then required to stay inside the run directory.
    let Ok(path) = root.join(relative).canonicalize() else {
        return not_found();
    };
    if !path.starts_with(root) || !path.is_file() {
        return not_found();
    }
    match std::fs::read(&path) {
        Ok(bytes) => page(StatusCode::OK, content_type(&path), bytes),
        Err(_) => not_found(),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "jsonl" => "application/x-ndjson",
        "md" | "txt" | "log" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "css" => "text/css",
        _ => "application/octet-stream",
    }
}

fn page(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self' 'unsafe-inline' data:; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_run_and_nothing_outside_it() {
        let dir = std::env::temp_dir().join(format!("parallax-serve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("goose")).unwrap();
        std::fs::write(dir.join("report.html"), "<h1>run</h1>").unwrap();
        std::fs::write(dir.join("results.json"), "{}").unwrap();
        let root = dir.canonicalize().unwrap();
        let app = router(root.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &str| {
            let url = format!("http://{addr}{path}");
            async move {
                tokio::task::spawn_blocking(move || {
                    let r = reqwest::blocking::get(url).unwrap();
                    let kind = r
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned());
                    (r.status().as_u16(), kind, r.text().unwrap())
                })
                .await
                .unwrap()
            }
        };
        let (status, kind, body) = get("/").await;
        assert_eq!((status, body.as_str()), (200, "<h1>run</h1>"));
        assert!(kind.unwrap().starts_with("text/html"));
        let (status, kind, _) = get("/results.json").await;
        assert_eq!((status, kind.as_deref()), (200, Some("application/json")));
        for outside in [
            "/../../etc/passwd",
            "/..%2f..%2fetc%2fpasswd",
            "/goose",
            "/nope.html",
        ] {
            assert_eq!(get(outside).await.0, 404, "{outside}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
