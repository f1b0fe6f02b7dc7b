//! Serving the router over HTTP/1 with upgrades, and the graceful shutdown.
//!
//! # Why not `axum::serve` (or `parallax_common::server::serve`)
//! axum hands hyper the socket wrapped in hyper-util's private `Rewind`
//! type, so an upgraded connection cannot be downcast back to its
//! `TcpStream`; WebSocket frames would then go through hyper's boxed
//! `Upgraded` and a split lock. Driving hyper's HTTP/1 connection here with
//! exactly a `TokioIo<TcpStream>` lets [`connection`](crate::connection)
//! own the bare socket — the cheapest idle connection there is. The
//! shutdown semantics are those of the shared `serve`.
//!
//! # Shutdown
//! When `shutdown` resolves: stop accepting, close every WebSocket with 1001
//! (and any upgraded during the drain), let in-flight HTTP requests finish
//! (idle keep-alive connections close), and return once all of that is
//! done or `grace` has run out (logging a warning, as linkerd does).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::hub::Hub;

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    hub: Arc<Hub>,
    shutdown: F,
    grace: Duration,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    // `stop` tells HTTP connections to finish; each holds a clone of
    // `in_flight`, so `in_flight_tx.closed()` resolves once all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (in_flight_tx, in_flight_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => spawn_http(stream, router.clone(), stop_rx.clone(), in_flight_rx.clone()),
                Err(e) => {
                    // Out of file descriptors or similar: back off instead
                    // of spinning; the listener stays usable.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        websockets = hub.connections(),
        "shutdown requested: closing WebSockets with 1001 and draining in-flight requests"
    );
    let _ = stop_tx.send(true);
    hub.close_all();
    drop(in_flight_rx);
    let drained = async {
        in_flight_tx.closed().await;
        hub.closed().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            websockets = hub.connections(),
            "grace period ran out; abandoning remaining connections"
        );
    }
    Ok(())
}

fn spawn_http(
    stream: TcpStream,
    router: Router,
    mut stop: watch::Receiver<bool>,
    in_flight: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        // With a timer hyper bounds how long a client may take to send a
        // request head (30 s by default), so idle sockets cannot pile up.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router))
            .with_upgrades();
        tokio::pin!(connection);
        let stopping = async move {
            // The `Ref` guard must not live across an await (it is not Send).
            let _ = stop.wait_for(|stop| *stop).await.map(drop);
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "HTTP connection ended with an error");
                }
            }
            () = stopping => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    });
}
