//! A gRPC bidirectional stream for the proxy's tests, without generated
//! code: an h2c echo upstream that answers each message the moment it
//! arrives, and a client that talks to it in lockstep (each message sent
//! only once the previous one came back), the call that deadlocks any hop
//! that reads a request body whole before forwarding it.
//!
//! ```ignore
//! let primary = echo_stream_server(Arc::new(AtomicUsize::new(0))).await;
//! let (back, trailers) = chat(proxy.addr, &[b"one", b"two"]).await;
//! ```
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;

/// A gRPC message frame: not compressed, its length, then `payload`.
pub fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// A bidirectional gRPC echo over h2c: each request frame goes back the
/// moment it arrives (the answer's head before any), and the request's
/// trailers come back with `grpc-status: 0`. `calls` counts the calls.
pub async fn echo_stream_server(
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::net::SocketAddr {
    use futures::channel::mpsc as fmpsc;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = std::sync::Arc::clone(&calls);
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (tx, rx) = fmpsc::unbounded::<
                        Result<http_body::Frame<Bytes>, std::convert::Infallible>,
                    >();
                    tokio::spawn(async move {
                        let mut body = request.into_body();
                        let mut trailers = http::HeaderMap::new();
                        while let Some(Ok(frame)) = body.frame().await {
                            match frame.into_data() {
                                Ok(data) => {
                                    let _ = tx.unbounded_send(Ok(http_body::Frame::data(data)));
                                }
                                Err(frame) => {
                                    trailers.extend(frame.into_trailers().unwrap_or_default())
                                }
                            }
                        }
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let _ = tx.unbounded_send(Ok(http_body::Frame::trailers(trailers)));
                    });
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(http_body_util::StreamBody::new(rx))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// One bidirectional call through the proxy over h2c, in lockstep: each
/// message is sent only once the previous one has come back, then the
/// request ends with the trailer `x-sent`. Returns what came back and the
/// answer's trailers; a step that does not come within 10 s fails.
pub async fn chat(
    proxy: std::net::SocketAddr,
    messages: &[&[u8]],
) -> (Vec<Bytes>, http::HeaderMap) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let step = Duration::from_secs(10);
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let (to_proxy, body) = futures::channel::mpsc::unbounded::<
        Result<http_body::Frame<Bytes>, std::convert::Infallible>,
    >();
    let request = Request::post(format!("http://{proxy}/echo.v1.Echo/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::StreamBody::new(body))
        .unwrap();
    to_proxy
        .unbounded_send(Ok(http_body::Frame::data(grpc_frame(messages[0]))))
        .unwrap();
    let response = tokio::time::timeout(step, sender.send_request(request))
        .await
        .expect("the answer's head came while the request was open")
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answer = response.into_body();
    let mut back = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            to_proxy
                .unbounded_send(Ok(http_body::Frame::data(grpc_frame(message))))
                .unwrap();
        }
        let frame = tokio::time::timeout(step, answer.frame())
            .await
            .unwrap_or_else(|_| panic!("message {i} did not come back while the request was open"))
            .unwrap()
            .unwrap();
        back.push(frame.into_data().unwrap());
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sent", messages.len().to_string().parse().unwrap());
    to_proxy
        .unbounded_send(Ok(http_body::Frame::trailers(trailers)))
        .unwrap();
    drop(to_proxy);
    let rest = tokio::time::timeout(step, answer.collect())
        .await
        .expect("the call ended")
        .unwrap();
    let trailers = rest.trailers().cloned().unwrap_or_default();
    assert!(rest.to_bytes().is_empty());
    (back, trailers)
}
