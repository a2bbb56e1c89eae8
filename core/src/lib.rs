//! Oxidex core: owns signing keys and tokens, storage, connectors, flow state and every protocol
//! rule, and serves them over gRPC (`api.Dex` for administration, `oxidex.v1` for the public
//! flows). It knows nothing of HTTP, cookies or HTML: that is the gateway's (`oxidex-api`) job.

pub mod clock;
pub mod config;
pub mod connector;
pub mod cpu;
pub mod discovery;
pub mod flow;
pub mod grant;
pub mod grpc;
pub mod password;
pub mod storage;
pub mod token;
