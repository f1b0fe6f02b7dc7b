//! Purpose-built WebSocket upstreams for the proxy's WebSocket tests: each
//! connection gets a subscription frame, then every batch of frames the
//! test broadcasts, passed through the upstream's [`Script`] — unchanged
//! for a faithful upstream; skipped, swapped, altered or padded for a
//! misbehaving one.
//!
//! ```ignore
//! let primary = ScriptedWs::start(Script::Faithful).await;
//! let shadow = ScriptedWs::start(Script::Custom(Arc::new(|frames| frames[1..].to_vec()))).await;
//! primary.broadcast(&frames);
//! ```
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// The first frame on every connection.
pub const SUBSCRIBED: &str = r#"{"op":"subscribed","topics":["t"]}"#;

pub type Transform = Arc<dyn Fn(Vec<String>) -> Vec<String> + Send + Sync>;

/// How an upstream turns a broadcast batch into what it sends.
#[derive(Clone)]
pub enum Script {
    /// Sends every frame as given.
    Faithful,
    /// Sends what the function makes of the batch.
    Custom(Transform),
}

/// A running scripted upstream; stops accepting when dropped.
pub struct ScriptedWs {
    pub addr: SocketAddr,
    batches: broadcast::Sender<Vec<String>>,
    /// Text messages received from clients, over all connections.
    pub received: Arc<parking_lot::Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
}

impl ScriptedWs {
    pub async fn start(script: Script) -> ScriptedWs {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (batches, _) = broadcast::channel::<Vec<String>>(64);
        let received = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let (tx, seen) = (batches.clone(), Arc::clone(&received));
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    a = listener.accept() => a.unwrap(),
                    _ = &mut stop_rx => return,
                };
                // Subscribed before the handshake completes, so no batch
                // sent after the client saw the subscription frame is lost.
                let mut rx = tx.subscribe();
                let (script, seen) = (script.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let (mut sink, mut stream) = ws.split();
                    if sink.send(Message::text(SUBSCRIBED)).await.is_err() {
                        return;
                    }
                    loop {
                        tokio::select! {
                            batch = rx.recv() => {
                                let Ok(batch) = batch else { return };
                                let frames = match &script {
                                    Script::Faithful => batch,
                                    Script::Custom(f) => f(batch),
                                };
                                for frame in frames {
                                    if sink.send(Message::text(frame)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            message = stream.next() => match message {
                                Some(Ok(Message::Text(text))) => seen.lock().push(text.to_string()),
                                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                                    let _ = sink.close().await;
                                    return;
                                }
                                Some(Ok(_)) => {}
                            },
                        }
                    }
                });
            }
        });
        ScriptedWs {
            addr,
            batches,
            received,
            _stop: stop_tx,
        }
    }

    /// Sends `frames` (through the script) on every open connection.
    pub fn broadcast(&self, frames: &[String]) {
        let _ = self.batches.send(frames.to_vec());
    }
}

/// `{"id":"<id>","body":<body>}`.
pub fn note(id: &str, body: &str) -> String {
    format!(r#"{{"id":"{id}","body":{body}}}"#)
}
