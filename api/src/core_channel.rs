//! The gRPC channel to core: in-process or over the network, behind one type.

use std::convert::Infallible;

use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceExt};

/// A cloneable gRPC channel to core's services. Generated tonic clients wrap it, for example
/// `DiscoveryClient::new(channel.clone())`.
#[derive(Clone)]
pub struct CoreChannel(BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>);

impl std::fmt::Debug for CoreChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoreChannel")
    }
}

impl CoreChannel {
    /// Calls core's services in the same process, still encoding every call as gRPC.
    pub fn in_process(routes: tonic::service::Routes) -> Self {
        let svc =
            ServiceExt::<http::Request<Body>>::map_err(routes, |e: Infallible| -> BoxError { match e {} });
        Self(BoxCloneSyncService::new(svc))
    }

    /// Calls core over the network.
    pub fn remote(channel: tonic::transport::Channel) -> Self {
        Self(BoxCloneSyncService::new(channel.map_err(BoxError::from)))
    }
}

impl tower::Service<http::Request<Body>> for CoreChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future =
        <BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError> as tower::Service<
            http::Request<Body>,
        >>::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.0.call(req)
    }
}
