//! The browser side of the device flow (RFC 8628 §3.3): the user types the user code, logs in
//! as for any authorization request, confirms on the consent page (always shown for a device:
//! it names the client, the defence against remote phishing of RFC 8628 §5.4), and lands on
//! `/device/callback`, which completes the device request. See `grant::device` for the device's
//! side.

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{DEVICE_CALLBACK_PATH, Provider, browser_hash, client_info, error_page, stale_request};
use crate::clock::new_id;
use crate::grant::device::{COMPLETE, DENIED, DeviceGrant, PENDING, normalize_user_code};
use crate::storage::{AuthRequest, DeviceRequest, DeviceToken, StorageError};
use crate::token::refresh::hash_code;

type StepResult = Result<pb::FlowStep, Status>;

fn entry(user_code: &str, invalid: bool, retry_after: u64) -> pb::FlowStep {
    pb::FlowStep {
        step: Some(pb::flow_step::Step::DeviceEntry(pb::DeviceEntry {
            user_code: user_code.to_owned(),
            invalid,
            retry_after_seconds: i64::try_from(retry_after).unwrap_or(i64::MAX),
        })),
    }
}

impl Provider {
    /// A live device request by (normalized) user code.
    async fn live_device_request(&self, user_code: &str) -> Result<Option<DeviceRequest>, Status> {
        match self.flow.get_device_request(user_code).await {
            Ok(r) if r.expiry >= self.now() => Ok(Some(r)),
            Ok(_) | Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `/device/auth/verify_code`: the user typed a user code. Guesses are throttled per IP
    /// like password guesses (a user code has about 34 bits).
    pub async fn verify_user_code(&self, req: pb::VerifyUserCodeRequest) -> StepResult {
        if req.browser_secret.is_empty() {
            return Ok(error_page(
                400,
                "cookies_required",
                "Cookies required",
                "Enable cookies for this site and try again.",
            ));
        }
        let ip: std::net::IpAddr = req.client_ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let account = format!("device-user-code\u{0}{ip}");
        if let Err(wait) = self.throttle.check(&account, ip) {
            tracing::warn!("user code entry throttled");
            return Ok(entry(&req.user_code, false, wait.seconds()));
        }
        let device = match normalize_user_code(&req.user_code) {
            Some(code) => self.live_device_request(&code).await?,
            None => None,
        };
        let Some(device) = device else {
            self.throttle.record_failure(&account, ip);
            return Ok(entry(&req.user_code, true, 0));
        };
        self.throttle.record_success(&account, ip);
        let client = match self.durable.get_client(&device.client_id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => {
                return Ok(error_page(
                    400,
                    "device_client_gone",
                    "Unknown application",
                    "The application of this code no longer exists.",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let expiry = self.expires_in(self.settings.auth_request_ttl).min(device.expiry);
        let request = AuthRequest {
            id: new_id(),
            client_id: client.id.clone(),
            response_types: vec!["code".into()],
            scopes: device.scopes.clone(),
            redirect_uri: self.url(DEVICE_CALLBACK_PATH),
            state: device.user_code.clone(),
            // The device flow has no nonce; the field binds the login (and the code it ends in)
            // to this device request, since `state` comes back through the browser and could
            // name another one.
            nonce: device.user_code.clone(),
            // The consent page names the client: the user confirms which device they let in.
            force_approval_prompt: true,
            expiry,
            hmac_key: rand::random::<[u8; 32]>().to_vec(),
            browser_hash: browser_hash(&req.browser_secret),
            ..Default::default()
        };
        self.flow.create_auth_request(request.clone()).await?;
        tracing::info!(client_id = %client.id, "device login started");
        self.choose_connector(&client, &request, "", false).await
    }

    /// `/device/callback`: the login of a device request finished; the code (single use, bound
    /// to the device request its login started for) completes that request's device token.
    pub async fn device_callback(&self, req: pb::DeviceCallbackRequest) -> StepResult {
        if req.code.is_empty() {
            return Ok(stale_request());
        }
        let code = match self.flow.take_auth_code(&hash_code(&req.code)).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(stale_request()),
            Err(e) => return Err(e.into()),
        };
        if code.expiry < self.now() || code.redirect_uri != self.url(DEVICE_CALLBACK_PATH) {
            return Ok(stale_request());
        }
        let Some(device) = self.live_device_request(&req.state).await? else {
            return Ok(error_page(
                400,
                "device_code_expired",
                "Device code expired",
                "The code shown on your device has expired. Start again on the device.",
            ));
        };
        if device.client_id != code.client_id {
            tracing::warn!(client_id = %code.client_id, "device callback for another client's device request");
            return Ok(stale_request());
        }
        if code.nonce != device.user_code {
            tracing::warn!(client_id = %code.client_id, "device callback for another device request");
            return Ok(stale_request());
        }
        let grant = DeviceGrant {
            scopes: code.scopes.clone(),
            claims: code.claims.clone(),
            connector_id: code.connector_id.clone(),
            connector_data: code.connector_data.clone(),
        };
        let data = serde_json::to_string(&grant).map_err(|_| Status::internal("encoding failed"))?;
        let completed = self
            .flow
            .update_device_token(&device.device_code, &|mut t: DeviceToken| {
                if t.status != PENDING {
                    return Err(StorageError::Rejected("device request already finished".into()));
                }
                t.status = COMPLETE.into();
                t.token.clone_from(&data);
                Ok(t)
            })
            .await;
        match completed {
            Ok(_) => {}
            Err(StorageError::NotFound | StorageError::Rejected(_)) => return Ok(stale_request()),
            Err(e) => return Err(e.into()),
        }
        // The user code is single use.
        match self.flow.delete_device_request(&device.user_code).await {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let client = self.durable.get_client(&code.client_id).await?;
        tracing::info!(client_id = %client.id, connector_id = %code.connector_id, "device authorized");
        Ok(pb::FlowStep {
            step: Some(pb::flow_step::Step::DeviceSuccess(pb::DeviceSuccess {
                client: Some(client_info(&client)),
            })),
        })
    }

    /// The user denied a device request on the consent page: the device's next poll gets
    /// `access_denied`.
    pub(super) async fn deny_device(&self, request: &AuthRequest) -> StepResult {
        if let Some(device) = self.live_device_request(&request.state).await? {
            let denied = self
                .flow
                .update_device_token(&device.device_code, &|mut t: DeviceToken| {
                    if t.status == PENDING {
                        t.status = DENIED.into();
                    }
                    Ok(t)
                })
                .await;
            match denied {
                Ok(_) | Err(StorageError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            self.flow.delete_device_request(&device.user_code).await.ok();
        }
        Ok(error_page(
            403,
            "device_denied",
            "Access denied",
            "You denied the device access. You can close this window.",
        ))
    }
}
