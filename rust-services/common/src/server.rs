//! Serving a router with graceful, bounded shutdown.
//!
//! When `shutdown` resolves the server stops accepting, lets in-flight
//! requests finish, and gives up after `grace` (logging a warning, as
//! linkerd does) so a stuck client cannot hold the process forever.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `shutdown` resolves and in-flight
/// requests drain, or `grace` runs out after it.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    grace: Duration,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutdown requested: draining in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let grace_timer = async move {
        // Wait for the shutdown signal, then for the grace period.
        while !*stopping_rx.borrow() {
            if stopping_rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = grace_timer => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period ran out; abandoning in-flight requests");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
///
/// The handlers are installed when this is *called*, not when the future is
/// first polled: a binary calls it before it logs `listening on`, so a
/// signal sent as soon as that line appears is handled (graceful drain,
/// exit 0) instead of killing the process by the default action. (axum
/// polls its shutdown future from a spawned task, which may not have run
/// yet by then.) Call it inside a tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
