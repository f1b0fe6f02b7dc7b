//! Descriptors from gRPC server reflection: the `descriptors =
//! "reflection"` source of a `compare` table, so a service's gRPC messages
//! diff at protobuf field paths without a descriptor set file.
//!
//! The protocol is `grpc.reflection.v1.ServerReflection/ServerReflectionInfo`
//! (falling back to `v1alpha`, which older servers serve alone): ask for the
//! list of services, then for the file defining each (other than reflection
//! itself), then for every dependency not yet received, by file name. The
//! files become one [`DescriptorPool`].
//!
//! The transport is the caller's ([`Transport`]): the proxy sends these
//! calls through the same upstream client as the traffic it compares, so
//! h2c, TLS and ALPN behave exactly as for the service, and this crate stays
//! free of networking. Each call is one request message followed by the end
//! of the client's stream; the server answers one response per request.
//!
//! Only the few fields used are declared; the message numbers are those of
//! `grpc/reflection/v1/reflection.proto` (identical in v1alpha).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use prost::Message;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::DescriptorPool;

/// The reflection method, v1.
pub const V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/// The reflection method, v1alpha.
pub const V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// What one reflection call came back with.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// `grpc-status` (from the trailers or a trailers-only answer); `None`
    /// when the answer had none (not a gRPC server).
    pub grpc_status: Option<String>,
    /// `grpc-message`, as sent.
    pub grpc_message: Option<String>,
    /// The HTTP status.
    pub http_status: u16,
    /// The response body: length-prefixed messages.
    pub body: Vec<u8>,
}

/// Sends one reflection call: `path` with `body` (one length-prefixed
/// request message) as a gRPC call, and returns the answer, or the
/// transport's error in words.
pub trait Transport {
    fn call(
        &mut self,
        path: &'static str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<Reply, String>> + Send;
}

/// Why no descriptors came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReflectionError {
    /// The calls failed on the wire (connection refused, TLS, …).
    #[error("the reflection call failed: {0}")]
    Transport(String),
    /// The server does not serve reflection (neither v1 nor v1alpha).
    #[error("it does not serve gRPC server reflection (grpc.reflection.v1 or v1alpha): {0}")]
    NotServed(String),
    /// The server answered something reflection does not answer.
    #[error("its reflection answer is broken: {0}")]
    Broken(String),
    /// Reflection lists no service but itself.
    #[error("its server reflection lists no service besides reflection itself")]
    NoServices,
}

#[derive(Clone, PartialEq, Message)]
struct Request {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(string, optional, tag = "3")]
    file_by_filename: Option<String>,
    #[prost(string, optional, tag = "4")]
    file_containing_symbol: Option<String>,
    #[prost(string, optional, tag = "7")]
    list_services: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(message, optional, tag = "4")]
    file_descriptor_response: Option<FileDescriptorResponse>,
    #[prost(message, optional, tag = "6")]
    list_services_response: Option<ListServiceResponse>,
    #[prost(message, optional, tag = "7")]
    error_response: Option<ErrorResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file_descriptor_proto: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    service: Vec<ServiceResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceResponse {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ErrorResponse {
    #[prost(int32, tag = "1")]
    error_code: i32,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// The most files fetched (a bound against a server that keeps naming new
/// dependencies).
const MAX_FILES: usize = 1000;

/// Fetches every service's descriptors (and their dependencies) by server
/// reflection over `transport`. The caller bounds the time.
///
/// # Errors
/// [`ReflectionError`]: the transport failed, the server serves no
/// reflection, its answers are broken, or it lists no service.
pub async fn fetch(transport: &mut impl Transport) -> Result<DescriptorPool, ReflectionError> {
    let mut session = Session {
        transport,
        path: V1,
    };
    let list = Request {
        list_services: Some(String::new()),
        ..Request::default()
    };
    let services = match session.ask(&list).await {
        Err(ReflectionError::NotServed(v1)) => {
            session.path = V1ALPHA;
            session.ask(&list).await.map_err(|e| match e {
                ReflectionError::NotServed(alpha) => {
                    ReflectionError::NotServed(format!("v1: {v1}; v1alpha: {alpha}"))
                }
                e => e,
            })?
        }
        other => other?,
    };
    let names: Vec<String> = services
        .list_services_response
        .ok_or_else(|| {
            ReflectionError::Broken("no list_services_response to list_services".into())
        })?
        .service
        .into_iter()
        .map(|s| s.name)
        .filter(|n| !n.starts_with("grpc.reflection."))
        .collect();
    if names.is_empty() {
        return Err(ReflectionError::NoServices);
    }

    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for name in &names {
        let request = Request {
            file_containing_symbol: Some(name.clone()),
            ..Request::default()
        };
        session.files(&request, &mut files).await?;
    }
    loop {
        for file in files.values() {
            for dependency in &file.dependency {
                if !files.contains_key(dependency) {
                    wanted.insert(dependency.clone());
                }
            }
        }
        let Some(next) = wanted.pop_first() else {
            break;
        };
        if files.len() >= MAX_FILES {
            return Err(ReflectionError::Broken(format!(
                "more than {MAX_FILES} files"
            )));
        }
        let request = Request {
            file_by_filename: Some(next.clone()),
            ..Request::default()
        };
        session.files(&request, &mut files).await?;
        if !files.contains_key(&next) {
            return Err(ReflectionError::Broken(format!(
                "asked for {next}, got {}",
                files.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files.into_values())
        .map_err(|e| ReflectionError::Broken(format!("its descriptors do not form a pool: {e}")))?;
    Ok(pool)
}

struct Session<'a, T> {
    transport: &'a mut T,
    path: &'static str,
}

impl<T: Transport> Session<'_, T> {
    /// One request, one response.
    async fn ask(&mut self, request: &Request) -> Result<Response, ReflectionError> {
        let message = request.encode_to_vec();
        let mut body = Vec::with_capacity(5 + message.len());
        body.push(0);
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(&message);
        let reply = self
            .transport
            .call(self.path, body)
            .await
            .map_err(ReflectionError::Transport)?;
        match reply.grpc_status.as_deref() {
            Some("0") => {}
            Some("12") => {
                return Err(ReflectionError::NotServed(format!(
                    "UNIMPLEMENTED {}",
                    reply.grpc_message.unwrap_or_default()
                )))
            }
            Some(code) => {
                return Err(ReflectionError::Broken(format!(
                    "grpc-status {code} {}",
                    reply.grpc_message.unwrap_or_default()
                )))
            }
            None => {
                return Err(ReflectionError::NotServed(format!(
                    "HTTP {} without grpc-status (not a gRPC server?)",
                    reply.http_status
                )))
            }
        }
        let messages = crate::grpc::messages(&reply.body, None, 64 << 20)
            .map_err(|e| ReflectionError::Broken(format!("its answer does not split: {e}")))?;
        let [message] = messages.as_slice() else {
            return Err(ReflectionError::Broken(format!(
                "{} response messages to one request",
                messages.len()
            )));
        };
        let response = Response::decode(message.as_slice())
            .map_err(|e| ReflectionError::Broken(format!("a response does not decode: {e}")))?;
        if let Some(error) = response.error_response {
            return Err(ReflectionError::Broken(format!(
                "error {} {:?} to {request:?}",
                error.error_code, error.error_message
            )));
        }
        Ok(response)
    }

    /// Asks `request` and adds the files it answers with to `files`.
    async fn files(
        &mut self,
        request: &Request,
        files: &mut BTreeMap<String, FileDescriptorProto>,
    ) -> Result<(), ReflectionError> {
        let response = self.ask(request).await?;
        let answer = response.file_descriptor_response.ok_or_else(|| {
            ReflectionError::Broken(format!("no file_descriptor_response to {request:?}"))
        })?;
        for bytes in answer.file_descriptor_proto {
            let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
                ReflectionError::Broken(format!("a FileDescriptorProto does not decode: {e}"))
            })?;
            files.insert(file.name().to_owned(), file);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server made of the project's own descriptors, answering like
    /// grpc-go's reflection (a file and none of its dependencies at once,
    /// so the dependency walk is exercised), or not at all.
    struct Served {
        pool: Option<DescriptorPool>,
        calls: Vec<&'static str>,
    }

    fn framed(message: &impl Message) -> Vec<u8> {
        let m = message.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend(m);
        out
    }

    impl Transport for Served {
        async fn call(&mut self, path: &'static str, body: Vec<u8>) -> Result<Reply, String> {
            self.calls.push(path);
            let Some(pool) = &self.pool else {
                return Ok(Reply {
                    grpc_status: Some("12".into()),
                    grpc_message: Some("unknown service".into()),
                    http_status: 200,
                    body: Vec::new(),
                });
            };
            let request = Request::decode(&body[5..]).map_err(|e| e.to_string())?;
            let file = |name: &str| {
                pool.get_file_by_name(name)
                    .map(|f| f.file_descriptor_proto().encode_to_vec())
            };
            let response = if request.list_services.is_some() {
                Response {
                    list_services_response: Some(ListServiceResponse {
                        service: pool
                            .services()
                            .map(|s| ServiceResponse {
                                name: s.full_name().to_owned(),
                            })
                            .chain([ServiceResponse {
                                name: "grpc.reflection.v1.ServerReflection".into(),
                            }])
                            .collect(),
                    }),
                    ..Response::default()
                }
            } else if let Some(symbol) = request.file_containing_symbol {
                let service = pool.get_service_by_name(&symbol).unwrap();
                Response {
                    file_descriptor_response: Some(FileDescriptorResponse {
                        file_descriptor_proto: vec![file(service.parent_file().name()).unwrap()],
                    }),
                    ..Response::default()
                }
            } else {
                let name = request.file_by_filename.unwrap();
                Response {
                    file_descriptor_response: Some(FileDescriptorResponse {
                        file_descriptor_proto: file(&name).into_iter().collect(),
                    }),
                    ..Response::default()
                }
            };
            Ok(Reply {
                grpc_status: Some("0".into()),
                grpc_message: None,
                http_status: 200,
                body: framed(&response),
            })
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        // The served transport never waits: one poll each step suffices.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn the_services_files_and_their_dependencies_make_the_pool() {
        let mut served = Served {
            pool: Some(crate::protobuf::project().clone()),
            calls: Vec::new(),
        };
        let pool = block_on(fetch(&mut served)).unwrap();
        assert!(pool
            .get_message_by_name("parallax.ingest.v1.IngestResponse")
            .is_some());
        assert!(pool
            .get_service_by_name("parallax.ingest.v1.IngestService")
            .is_some());
        assert!(served.calls.iter().all(|p| *p == V1));
    }

    #[test]
    fn a_server_without_reflection_is_named_for_both_versions() {
        let mut served = Served {
            pool: None,
            calls: Vec::new(),
        };
        let e = block_on(fetch(&mut served)).unwrap_err();
        assert!(matches!(e, ReflectionError::NotServed(_)), "{e}");
        assert!(e.to_string().contains("v1alpha"), "{e}");
        assert_eq!(served.calls, [V1, V1ALPHA]);
    }
}
