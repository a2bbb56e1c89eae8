//! `oxidex.v1.Flow` and `oxidex.v1.Token`: thin tonic services over [`Provider`].

use std::sync::Arc;

use oxidex_proto::oxidex::v1 as pb;
use tonic::{Request, Response, Status};

use crate::flow::Provider;

/// Serves the browser flow and the token endpoint from one [`Provider`].
#[derive(Debug, Clone)]
pub struct FlowService {
    provider: Arc<Provider>,
}

impl FlowService {
    /// A service over `provider`.
    pub fn new(provider: Arc<Provider>) -> Self {
        Self { provider }
    }
}

#[tonic::async_trait]
impl pb::flow_server::Flow for FlowService {
    async fn authorize(&self, r: Request<pb::AuthorizeRequest>) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.authorize(r.into_inner()).await?))
    }
    async fn select_connector(
        &self,
        r: Request<pb::SelectConnectorRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.select_connector(r.into_inner()).await?))
    }
    async fn password_login(
        &self,
        r: Request<pb::PasswordLoginRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.password_login(r.into_inner()).await?))
    }
    async fn callback(&self, r: Request<pb::CallbackRequest>) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.callback(r.into_inner()).await?))
    }
    async fn get_approval(&self, r: Request<pb::ApprovalRequest>) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.get_approval(r.into_inner()).await?))
    }
    async fn approve(&self, r: Request<pb::ApproveRequest>) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.approve(r.into_inner()).await?))
    }
    async fn verify_user_code(
        &self,
        r: Request<pb::VerifyUserCodeRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.verify_user_code(r.into_inner()).await?))
    }
    async fn device_callback(
        &self,
        r: Request<pb::DeviceCallbackRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        Ok(Response::new(self.provider.device_callback(r.into_inner()).await?))
    }
}

/// Serves `oxidex.v1.Token`.
#[derive(Debug, Clone)]
pub struct TokenService {
    provider: Arc<Provider>,
}

impl TokenService {
    /// A service over `provider`.
    pub fn new(provider: Arc<Provider>) -> Self {
        Self { provider }
    }
}

#[tonic::async_trait]
impl pb::token_server::Token for TokenService {
    async fn token(&self, r: Request<pb::TokenRequest>) -> Result<Response<pb::TokenResult>, Status> {
        Ok(Response::new(self.provider.token(r.into_inner()).await?))
    }
    async fn device_authorization(
        &self,
        r: Request<pb::DeviceAuthorizationRequest>,
    ) -> Result<Response<pb::DeviceAuthorizationResult>, Status> {
        Ok(Response::new(self.provider.device_authorization(r.into_inner()).await?))
    }
    async fn userinfo(
        &self,
        r: Request<pb::UserinfoRequest>,
    ) -> Result<Response<pb::UserinfoResult>, Status> {
        Ok(Response::new(self.provider.userinfo(r.into_inner()).await?))
    }
    async fn introspect(
        &self,
        r: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResult>, Status> {
        Ok(Response::new(self.provider.introspect(r.into_inner()).await?))
    }
    async fn revoke(&self, r: Request<pb::RevokeRequest>) -> Result<Response<pb::RevokeResult>, Status> {
        Ok(Response::new(self.provider.revoke(r.into_inner()).await?))
    }
}
