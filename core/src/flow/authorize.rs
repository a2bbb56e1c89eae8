//! The flow steps: authorize, choose a connector, log in, consent, respond.

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{
    DEVICE_CALLBACK_PATH, OOB_REDIRECT_URI, Provider, approval_hmac, approval_hmac_ok, browser_hash,
    client_info, connector_allowed, describe_scope, error_page, normalize_response_type, redirect,
    same_browser, stale_request, validate_challenge,
};
use crate::clock::new_id;
use crate::connector::{CallbackParams, ConnectorError, ConnectorScopes, Identity, OpenConnector};
use crate::storage::{AuthCode, AuthRequest, Client, Pkce, StorageError};
use crate::token::refresh::hash_code;
use crate::token::scopes::Scopes;

type StepResult = Result<pb::FlowStep, Status>;

/// Where error redirects go once the redirect URI is trusted.
struct Reply<'a> {
    provider: &'a Provider,
    redirect_uri: &'a str,
    state: &'a str,
    /// Implicit and hybrid responses (and their errors) go in the fragment (OIDC Core 3.2.2.5).
    fragment: bool,
}

impl Reply<'_> {
    /// An OAuth error sent back to the client (RFC 6749 §4.1.2.1) with `iss` (RFC 9207).
    fn error(&self, error: &str, description: &str) -> pb::FlowStep {
        if self.redirect_uri == OOB_REDIRECT_URI {
            return error_page(
                400,
                "authorization_failed",
                "Authorization failed",
                format!("{error}: {description}"),
            );
        }
        let mut params = vec![("error", error)];
        if !description.is_empty() {
            params.push(("error_description", description));
        }
        self.send(params)
    }

    /// Redirects to the client with `params`, then `state` and `iss` (RFC 9207), in the query or
    /// the fragment.
    fn send<'p>(&'p self, mut params: Vec<(&'p str, &'p str)>) -> pb::FlowStep {
        let Ok(mut url) = url::Url::parse(self.redirect_uri) else {
            return error_page(
                400,
                "invalid_redirect_uri",
                "Invalid redirect URI",
                "The application's redirect URI is not a URL.",
            );
        };
        if !self.state.is_empty() {
            params.push(("state", self.state));
        }
        params.push(("iss", &self.provider.issuer));
        if self.fragment {
            let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            url.set_fragment(Some(&encoded));
        } else {
            url.query_pairs_mut().extend_pairs(params);
        }
        redirect(url.to_string())
    }
}

/// Whether a public client without registered redirect URIs may use `uri` (Dex's rules: the
/// OOB page, the device callback, and http loopback on any port).
fn public_default_redirect(uri: &str) -> bool {
    if uri == OOB_REDIRECT_URI {
        return true;
    }
    let Ok(url) = url::Url::parse(uri) else { return false };
    url.scheme() == "http"
        && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
}

/// The grant a request will end in, for connectors restricted to some grant types.
fn grant_type_of(provider: &Provider, request: &AuthRequest) -> &'static str {
    if request.redirect_uri == provider.url(DEVICE_CALLBACK_PATH) {
        crate::grant::GRANT_DEVICE_CODE
    } else if request.response_types.iter().any(|r| !r.split(' ').any(|w| w == "code")) {
        "implicit"
    } else {
        "authorization_code"
    }
}

fn redirect_uri_allowed(client: &Client, uri: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == uri) {
        return true;
    }
    client.public && client.redirect_uris.is_empty() && public_default_redirect(uri)
}

impl Provider {
    /// Where the browser goes when the flow leaves this provider (see
    /// `PasswordForm.redirect_origin`): the redirect URI's origin, or its scheme for a custom
    /// scheme; empty for out-of-band and device requests, which end here.
    fn redirect_origin(&self, request: &AuthRequest) -> String {
        if request.redirect_uri == OOB_REDIRECT_URI || request.redirect_uri == self.url(DEVICE_CALLBACK_PATH)
        {
            return String::new();
        }
        match url::Url::parse(&request.redirect_uri) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
            Ok(u) => format!("{}:", u.scheme()),
            Err(_) => String::new(),
        }
    }

    /// `/auth`: validates an authorization request and starts the login.
    pub async fn authorize(&self, req: pb::AuthorizeRequest) -> StepResult {
        if req.client_id.is_empty() {
            return Ok(error_page(
                400,
                "missing_client_id",
                "Invalid request",
                "The request has no client_id.",
            ));
        }
        let client = match self.durable.get_client(&req.client_id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => {
                return Ok(error_page(
                    400,
                    "unknown_client",
                    "Unknown application",
                    "No application is registered with this client_id.",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if req.redirect_uri.is_empty()
            || req.redirect_uri == self.url(DEVICE_CALLBACK_PATH)
            || !redirect_uri_allowed(&client, &req.redirect_uri)
        {
            return Ok(error_page(
                400,
                "invalid_redirect_uri",
                "Invalid redirect URI",
                "The redirect_uri is not registered for this application.",
            ));
        }
        let mut reply =
            Reply { provider: self, redirect_uri: &req.redirect_uri, state: &req.state, fragment: false };
        if !req.request.is_empty() || !req.request_uri.is_empty() {
            return Ok(reply.error("request_not_supported", "Request objects are not supported."));
        }
        if req.browser_secret.is_empty() {
            return Ok(error_page(
                400,
                "cookies_required",
                "Cookies required",
                "Enable cookies for this site and try again.",
            ));
        }

        // Response type: every word must be known, and the combination enabled.
        let response_type = normalize_response_type(&req.response_type);
        if response_type.is_empty() {
            return Ok(reply.error("invalid_request", "No response_type provided."));
        }
        let words: Vec<&str> = response_type.split(' ').collect();
        if words.iter().any(|w| !matches!(*w, "code" | "token" | "id_token")) {
            return Ok(reply.error("unsupported_response_type", "Unknown response_type."));
        }
        if !self.settings.response_types.contains(&response_type) {
            return Ok(
                reply.error("unsupported_response_type", "This response_type is not enabled on this server.")
            );
        }
        let with_code = words.contains(&"code");
        reply.fragment = !with_code || words.len() > 1;
        if words == ["token"] {
            return Ok(reply.error("invalid_request", "response_type=token must come with code or id_token."));
        }
        if words.contains(&"token") && req.redirect_uri == OOB_REDIRECT_URI {
            return Ok(reply.error("invalid_request", "Tokens cannot be shown on the out-of-band page."));
        }
        // OIDC Core 3.2.2.1 and 3.3.2.11: implicit and hybrid requests need a nonce (Dex asks for
        // one only without a code; a hybrid response without one cannot be tied to the request).
        if response_type != "code" && req.nonce.is_empty() {
            return Ok(reply.error("invalid_request", "A nonce is required unless response_type is code."));
        }

        let scopes = match Scopes::parse(&req.scope) {
            Ok(s) => s,
            Err(e) => return Ok(reply.error("invalid_scope", &e.to_string())),
        };
        if !scopes.openid() {
            return Ok(reply.error("invalid_scope", "Missing required scope(s) [\"openid\"]."));
        }
        if let Some(why) = self.untrusted_peers(&client, &scopes).await? {
            return Ok(reply.error("invalid_scope", &why));
        }

        // PKCE (RFC 7636), S256 by default; required for public clients and when enforced.
        let method = match validate_challenge(&self.settings, &req.code_challenge, &req.code_challenge_method)
        {
            Ok(m) => m,
            Err(why) => return Ok(reply.error("invalid_request", &why)),
        };
        if req.code_challenge.is_empty() && with_code && (client.public || self.settings.pkce_enforce) {
            return Ok(reply.error("invalid_request", "A code_challenge (PKCE, S256) is required."));
        }

        let prompts: Vec<&str> = req.prompt.split_whitespace().collect();
        if prompts.contains(&"none") {
            if prompts.len() > 1 {
                return Ok(
                    reply.error("invalid_request", "prompt=none cannot be combined with other values.")
                );
            }
            // There are no browser sessions yet, so the user always has to log in.
            return Ok(reply.error("login_required", "The user is not logged in."));
        }

        if !req.connector_id.is_empty() && !connector_allowed(&client, &req.connector_id) {
            return Ok(reply.error("invalid_request", "This connector is not allowed for this client."));
        }

        let request = AuthRequest {
            id: new_id(),
            client_id: client.id.clone(),
            response_types: vec![response_type],
            scopes: scopes.to_vec(),
            redirect_uri: req.redirect_uri.clone(),
            nonce: req.nonce.clone(),
            state: req.state.clone(),
            force_approval_prompt: req.approval_prompt == "force" || prompts.contains(&"consent"),
            expiry: self.expires_in(self.settings.auth_request_ttl),
            pkce: Pkce { code_challenge: req.code_challenge.clone(), code_challenge_method: method },
            hmac_key: rand::random::<[u8; 32]>().to_vec(),
            browser_hash: browser_hash(&req.browser_secret),
            ..Default::default()
        };
        self.flow.create_auth_request(request.clone()).await?;

        self.choose_connector(&client, &request, &req.connector_id, prompts.contains(&"select_account")).await
    }

    /// After a request is stored: the chooser, or straight to the one connector (named by the
    /// request, or the only one when the chooser would have a single entry).
    pub(super) async fn choose_connector(
        &self,
        client: &Client,
        request: &AuthRequest,
        requested: &str,
        select_account: bool,
    ) -> StepResult {
        let available = self.available_connectors(client, request).await?;
        let chosen = if !requested.is_empty() {
            Some(requested.to_owned())
        } else if available.len() == 1 && !self.settings.always_show_login && !select_account {
            available.first().map(|c| c.id.clone())
        } else {
            None
        };
        match chosen {
            Some(id) => self.start_login(request, &id).await,
            None if available.is_empty() => Ok(error_page(
                500,
                "no_connectors",
                "No way to log in",
                "No login method is configured for this application. Contact the administrator.",
            )),
            None => Ok(pb::FlowStep {
                step: Some(pb::flow_step::Step::Chooser(pb::ConnectorChooser {
                    request_id: request.id.clone(),
                    connectors: available,
                    client: Some(client_info(client)),
                })),
            }),
        }
    }

    /// The connectors a request may log in with: those the client allows and whose
    /// `grantTypes` allow the request's grant (Dex: a device login offers only the connectors
    /// allowing the device grant).
    async fn available_connectors(
        &self,
        client: &Client,
        request: &AuthRequest,
    ) -> Result<Vec<pb::ConnectorInfo>, Status> {
        let grant_type = grant_type_of(self, request);
        let list = self.connectors.list_open().await.map_err(connector_status)?;
        Ok(list
            .into_iter()
            .filter(|c| connector_allowed(client, c.id()) && c.allows_grant_type(grant_type))
            .map(|c| pb::ConnectorInfo {
                id: c.id().to_owned(),
                r#type: c.connector_type().to_owned(),
                name: c.name().to_owned(),
            })
            .collect())
    }

    /// Loads a pending request and checks that this browser started it.
    async fn pending(&self, request_id: &str, browser_secret: &str) -> Result<Option<AuthRequest>, Status> {
        let request = match self.flow.get_auth_request(request_id).await {
            Ok(r) => r,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if request.expiry < self.now() || !same_browser(&request, browser_secret) {
            return Ok(None);
        }
        Ok(Some(request))
    }

    async fn start_login(&self, request: &AuthRequest, connector_id: &str) -> StepResult {
        let client = self.durable.get_client(&request.client_id).await?;
        if !connector_allowed(&client, connector_id) {
            return Ok(error_page(
                403,
                "connector_not_allowed",
                "Login method not allowed",
                "This application does not allow this login method.",
            ));
        }
        let connector = match self.connectors.get(connector_id).await {
            Ok(c) => c,
            Err(ConnectorError::NotFound { .. }) => {
                return Ok(error_page(
                    404,
                    "unknown_connector",
                    "Unknown login method",
                    "This login method does not exist.",
                ));
            }
            Err(e) => return Err(connector_status(e)),
        };
        if !connector.allows_grant_type(grant_type_of(self, request)) {
            return Ok(error_page(
                403,
                "connector_not_allowed",
                "Login method not allowed",
                "This login method cannot be used for this kind of sign-in.",
            ));
        }
        // A password connector shows Oxidex's form; a callback connector sends the browser
        // upstream, and what it must remember until the browser returns (a PKCE verifier, a
        // nonce) stays with the pending request, bound to this browser. The identity's connector
        // data replaces it once the login succeeds.
        let (next, state_data) = if connector.password().is_some() {
            (format!("{}?req={}", self.url(&format!("/auth/{connector_id}/login")), request.id), Vec::new())
        } else if let Some(callback) = connector.callback() {
            let scopes = ConnectorScopes::from_scopes(&request.scopes);
            let login = callback
                .login_url(&scopes, &self.url("/callback"), &request.id)
                .await
                .map_err(connector_status)?;
            (login.url, login.state_data)
        } else {
            return Ok(error_page(
                500,
                "connector_unavailable",
                "Login method unavailable",
                "This login method cannot be used in a browser.",
            ));
        };
        let chosen = connector_id.to_owned();
        self.flow
            .update_auth_request(&request.id, &|mut r: AuthRequest| {
                r.connector_id.clone_from(&chosen);
                r.connector_data.clone_from(&state_data);
                Ok(r)
            })
            .await?;
        Ok(redirect(next))
    }

    /// `/auth/{connector}`: the user picked a connector (or the password form is shown again).
    pub async fn select_connector(&self, req: pb::SelectConnectorRequest) -> StepResult {
        let Some(request) = self.pending(&req.request_id, &req.browser_secret).await? else {
            return Ok(stale_request());
        };
        if request.logged_in {
            return Ok(stale_request());
        }
        if request.connector_id == req.connector_id {
            // The login page itself: show the form of a password connector.
            if let Ok(connector) = self.connectors.get(&req.connector_id).await
                && let Some(password) = connector.password()
            {
                return self.password_form(&request, &connector, password.prompt(), "", false, 0).await;
            }
        }
        self.start_login(&request, &req.connector_id).await
    }

    async fn password_form(
        &self,
        request: &AuthRequest,
        connector: &OpenConnector,
        prompt: &str,
        username: &str,
        invalid: bool,
        retry_after: u64,
    ) -> StepResult {
        let client = self.durable.get_client(&request.client_id).await?;
        let show_back_link = self.available_connectors(&client, request).await?.len() > 1;
        Ok(pb::FlowStep {
            step: Some(pb::flow_step::Step::PasswordForm(pb::PasswordForm {
                request_id: request.id.clone(),
                connector_id: connector.id().to_owned(),
                username_prompt: prompt.to_owned(),
                username: username.to_owned(),
                invalid,
                retry_after_seconds: i64::try_from(retry_after).unwrap_or(i64::MAX),
                show_back_link,
                client: Some(client_info(&client)),
                redirect_origin: self.redirect_origin(request),
            })),
        })
    }

    /// `/auth/{connector}/login` (POST): checks a username and password.
    pub async fn password_login(&self, req: pb::PasswordLoginRequest) -> StepResult {
        let Some(request) = self.pending(&req.request_id, &req.browser_secret).await? else {
            return Ok(stale_request());
        };
        if request.logged_in || request.connector_id != req.connector_id {
            return Ok(stale_request());
        }
        let connector = self.connectors.get(&req.connector_id).await.map_err(connector_status)?;
        let Some(password) = connector.password() else {
            return Ok(error_page(
                400,
                "not_password_connector",
                "Not a password login",
                "This login method does not take a password.",
            ));
        };
        let ip: std::net::IpAddr = req.client_ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let account = format!("{}\u{0}{}", connector.id(), req.username.to_lowercase());
        if let Err(wait) = self.throttle.check(&account, ip) {
            tracing::warn!(connector_id = %connector.id(), "login throttled");
            return self
                .password_form(&request, &connector, password.prompt(), &req.username, false, wait.seconds())
                .await;
        }
        if req.username.trim().is_empty() || req.password.is_empty() {
            return self.password_form(&request, &connector, password.prompt(), &req.username, true, 0).await;
        }
        let scopes = ConnectorScopes::from_scopes(&request.scopes);
        match password.login(&scopes, &req.username, &req.password).await {
            Ok(Some(identity)) => {
                self.throttle.record_success(&account, ip);
                tracing::info!(connector_id = %connector.id(), client_id = %request.client_id, "login successful");
                self.finish_login(request, identity).await
            }
            Ok(None) => {
                self.throttle.record_failure(&account, ip);
                tracing::info!(connector_id = %connector.id(), "login failed: invalid credentials");
                self.password_form(&request, &connector, password.prompt(), &req.username, true, 0).await
            }
            Err(e) => Err(connector_status(e)),
        }
    }

    /// `/callback`: the upstream sent the browser back.
    pub async fn callback(&self, req: pb::CallbackRequest) -> StepResult {
        let state = req.params.get("state").cloned().unwrap_or_default();
        let Some(request) = self.pending(&state, &req.browser_secret).await? else {
            return Ok(stale_request());
        };
        if request.logged_in || (!req.connector_id.is_empty() && req.connector_id != request.connector_id) {
            return Ok(stale_request());
        }
        let connector = self.connectors.get(&request.connector_id).await.map_err(connector_status)?;
        let Some(callback) = connector.callback() else {
            return Ok(stale_request());
        };
        let mut params = CallbackParams::new();
        for (k, v) in &req.params {
            params.insert(k.clone(), v.clone());
        }
        let scopes = ConnectorScopes::from_scopes(&request.scopes);
        match callback.handle_callback(&scopes, &params, &request.connector_data).await {
            Ok(identity) => {
                tracing::info!(connector_id = %connector.id(), client_id = %request.client_id, "login successful");
                self.finish_login(request, identity).await
            }
            Err(e) => {
                tracing::warn!(connector_id = %connector.id(), error = %e, "upstream login failed");
                Ok(callback_error_page(e))
            }
        }
    }

    async fn finish_login(&self, request: AuthRequest, identity: Identity) -> StepResult {
        let claims = identity.claims();
        let data = identity.connector_data.clone();
        let updated = self
            .flow
            .update_auth_request(&request.id, &|mut r: AuthRequest| {
                if r.logged_in {
                    return Err(StorageError::Rejected("already logged in".into()));
                }
                r.logged_in = true;
                r.claims = claims.clone();
                r.connector_data = data.clone();
                Ok(r)
            })
            .await;
        let request = match updated {
            Ok(r) => r,
            Err(StorageError::Rejected(_) | StorageError::NotFound) => return Ok(stale_request()),
            Err(e) => return Err(e.into()),
        };
        if self.settings.skip_approval && !request.force_approval_prompt {
            return self.respond(request).await;
        }
        Ok(redirect(format!("{}?req={}&hmac={}", self.url("/approval"), request.id, approval_hmac(&request))))
    }

    async fn approvable(
        &self,
        request_id: &str,
        hmac: &str,
        secret: &str,
    ) -> Result<Option<AuthRequest>, Status> {
        let Some(request) = self.pending(request_id, secret).await? else { return Ok(None) };
        if !request.logged_in || !approval_hmac_ok(&request, hmac) {
            return Ok(None);
        }
        Ok(Some(request))
    }

    /// `/approval` (GET): what the consent page shows.
    pub async fn get_approval(&self, req: pb::ApprovalRequest) -> StepResult {
        let Some(request) = self.approvable(&req.request_id, &req.hmac, &req.browser_secret).await? else {
            return Ok(stale_request());
        };
        let client = self.durable.get_client(&request.client_id).await?;
        let scopes = request
            .scopes
            .iter()
            .filter_map(|s| describe_scope(s).map(|d| pb::ScopeInfo { scope: s.clone(), description: d }))
            .collect();
        Ok(pb::FlowStep {
            step: Some(pb::flow_step::Step::Approval(pb::Approval {
                request_id: request.id.clone(),
                hmac: req.hmac,
                client: Some(client_info(&client)),
                scopes,
                username: request.claims.username.clone(),
                email: request.claims.email.clone(),
                redirect_origin: self.redirect_origin(&request),
            })),
        })
    }

    /// `/approval` (POST): the user approved or denied.
    pub async fn approve(&self, req: pb::ApproveRequest) -> StepResult {
        let Some(request) = self.approvable(&req.request_id, &req.hmac, &req.browser_secret).await? else {
            return Ok(stale_request());
        };
        if !req.approve {
            self.flow.delete_auth_request(&request.id).await.ok();
            if request.redirect_uri == self.url(DEVICE_CALLBACK_PATH) {
                return self.deny_device(&request).await;
            }
            return Ok(reply_for(self, &request).error("access_denied", "The user denied the request."));
        }
        self.respond(request).await
    }

    /// Ends the flow: consumes the request and sends the authorization response to the client
    /// (code in the query; or, for implicit and hybrid response types, code and tokens in the
    /// fragment; or the code on the out-of-band page).
    async fn respond(&self, request: AuthRequest) -> StepResult {
        match self.flow.delete_auth_request(&request.id).await {
            Ok(()) => {}
            // Another tab finished the same request first.
            Err(StorageError::NotFound) => return Ok(stale_request()),
            Err(e) => return Err(e.into()),
        }
        let response_type = request.response_types.first().cloned().unwrap_or_else(|| "code".to_owned());
        let words: Vec<&str> = response_type.split(' ').collect();
        let code = if words.contains(&"code") {
            let code = new_id();
            self.flow
                .create_auth_code(AuthCode {
                    id: hash_code(&code),
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    nonce: request.nonce.clone(),
                    scopes: request.scopes.clone(),
                    connector_id: request.connector_id.clone(),
                    connector_data: request.connector_data.clone(),
                    claims: request.claims.clone(),
                    expiry: self.expires_in(self.settings.code_ttl),
                    pkce: request.pkce.clone(),
                })
                .await?;
            Some(code)
        } else {
            None
        };
        if request.redirect_uri == OOB_REDIRECT_URI {
            let code = code.unwrap_or_default();
            return Ok(pb::FlowStep { step: Some(pb::flow_step::Step::Oob(pb::OobCode { code })) });
        }
        let reply = reply_for(self, &request);
        let (with_token, with_id_token) = (words.contains(&"token"), words.contains(&"id_token"));
        if !with_token && !with_id_token {
            return Ok(reply.send(vec![("code", code.as_deref().unwrap_or_default())]));
        }
        // Implicit or hybrid: the tokens travel in the fragment.
        let scopes = Scopes::from_list_lenient(request.scopes.iter());
        let minted = self
            .mint_grant(&crate::grant::Grant {
                client_id: &request.client_id,
                scopes: &scopes,
                claims: &request.claims,
                connector_id: &request.connector_id,
                nonce: &request.nonce,
                code: code.as_deref(),
                access_token: with_token,
                id_token: with_id_token,
            })
            .await?;
        let expires_in = minted.expires_in.to_string();
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(code) = &code {
            params.push(("code", code));
        }
        if with_token {
            params.extend([
                ("access_token", minted.access_token.as_str()),
                ("token_type", "bearer"),
                ("expires_in", expires_in.as_str()),
            ]);
        }
        if with_id_token {
            params.push(("id_token", &minted.id_token));
        }
        tracing::info!(client_id = %request.client_id, %response_type, "tokens issued from the authorization endpoint");
        Ok(reply.send(params))
    }
}

/// The reply channel of a stored (so already validated) request.
fn reply_for<'a>(provider: &'a Provider, request: &'a AuthRequest) -> Reply<'a> {
    let words: Vec<&str> = request.response_types.first().map(|r| r.split(' ').collect()).unwrap_or_default();
    Reply {
        provider,
        redirect_uri: &request.redirect_uri,
        state: &request.state,
        fragment: !words.is_empty() && (!words.contains(&"code") || words.len() > 1),
    }
}

/// The page for a failed callback. The user learns which side failed: the upstream refused
/// them (not in an allowed org, team, group or hosted domain: 403, with the connector's
/// reason, which connectors compose themselves and which names only the user's own account),
/// the callback itself was not acceptable (400), or the upstream failed (502, details only in
/// the log).
fn callback_error_page(e: ConnectorError) -> pb::FlowStep {
    match e {
        ConnectorError::Refused(reason) => error_page(
            403,
            "upstream_refused",
            "Access denied",
            format!("You are not allowed to log in here: {reason}."),
        ),
        ConnectorError::InvalidCallback(reason) => error_page(
            400,
            "upstream_login_failed",
            "Login failed",
            format!("The login provider did not confirm your identity ({reason}). Try again."),
        ),
        _ => error_page(
            502,
            "connector_unavailable",
            "Login provider unavailable",
            "The login provider could not be reached or gave an unexpected answer. Try again later.",
        ),
    }
}

/// Connector failures as gRPC statuses: the cause is logged, the message stays generic.
pub(crate) fn connector_status(e: ConnectorError) -> Status {
    match e {
        ConnectorError::NotFound { .. } => Status::not_found("unknown connector"),
        other => {
            tracing::error!(error = %other, "connector failed");
            Status::unavailable("the login provider is unavailable; try again later")
        }
    }
}
