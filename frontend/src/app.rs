//! The browser app (wasm32 only): reads the step the gateway embedded in the page, renders it
//! with Leptos into `<main id="app">` (replacing the no-JS rendering), and drives the flow over
//! gRPC-web: the password login, the consent's approve/deny and the device user code call
//! `oxidex.v1.Flow` at `{issuer}/grpc-web` (the gateway binds each call to the browser cookie and
//! the client's address; the message's `browser_secret` stays empty). Every protocol rule stays
//! in core.
//!
//! What a call answers decides what happens:
//! - a `Redirect` (to the next page of the flow such as `/approval`, to the client, or to an
//!   upstream provider) is a real navigation (`location.assign`), so the address bar, reload and
//!   back always show a page the server renders;
//! - any other step (a wrong password, the throttling wait, a refused user code, the chooser
//!   after a user code, the out-of-band code, an error) is rendered in place, without a page
//!   load. Core has no other URL for these steps; a reload shows the page's own URL afresh (the
//!   password form again, the code entry again: a user code may be entered again until its
//!   login completes), never a resubmission. A client logo the page's CSP does not allow (the
//!   device page knows no client) is left out of a step rendered in place;
//! - a failed call (the network, a proxy that does not pass gRPC-web, or a gRPC error status)
//!   submits the very same form instead, so the server's no-JS answer is the fallback.
//!
//! The forms stay real `method="post"` forms with their actions, as in the no-JS page: without
//! JavaScript they work unchanged. The chooser's connectors stay links (a GET to
//! `/auth/{connector}`, a page with its own URL).
//!
//! Beyond the no-JS page it shows connector icons, the client's logo, a live countdown while
//! login attempts are throttled (the submit button is disabled until it ends), a copy button for
//! the out-of-band code and a normalising user-code input. Every text comes from the catalogs in
//! the page's locale (core answers with codes, not words), so steps rendered in place keep the
//! page's language. Errors are in `role="alert"` elements, status changes in `aria-live`
//! regions. `<html data-step>` counts the steps rendered in place (for tests).

use std::time::Duration;

use leptos::prelude::*;
use oxidex_proto::oxidex::v1 as pb;
use pb::flow_client::FlowClient;
use pb::flow_step::Step;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;

use crate::messages::{self, Locale, Msg};
use crate::page::{APP_ROOT_ID, Embedded, PageContext, STEP_ELEMENT_ID, origin_of};

/// The gRPC-web endpoint below the issuer path (the gateway's `grpc_web::PREFIX`).
const GRPC_WEB_PATH: &str = "/grpc-web";

/// The step on show and whether a call is running.
#[derive(Clone, Copy)]
struct Flow {
    step: RwSignal<pb::FlowStep>,
    busy: StoredValue<bool>,
}

/// Everything a page renders from.
#[derive(Clone)]
struct Ctx {
    page: PageContext,
    locale: Locale,
    flow: Flow,
    /// The image origins the page's Content-Security-Policy allows besides its own: the
    /// operator's logo and the client logo of the step the page was served with.
    images: Vec<String>,
}

impl Ctx {
    fn t(&self, m: Msg) -> &'static str {
        m.text(self.locale)
    }

    fn fill(&self, m: Msg, args: &[(&str, &str)]) -> String {
        m.fill(self.locale, args)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.page.base, path)
    }

    /// Whether the page may show the image at `url`: a step rendered in place can bring a
    /// client logo the page's policy does not allow (the device page knows no client), which
    /// is then left out rather than blocked.
    fn image_allowed(&self, url: &str) -> bool {
        if url.is_empty() {
            return false;
        }
        if url.starts_with('/') && !url.starts_with("//") {
            return true;
        }
        let own = window().location().origin().ok().map(|o| o.to_ascii_lowercase());
        origin_of(url).is_some_and(|o| own.as_deref() == Some(o.as_str()) || self.images.contains(&o))
    }

    /// Shows what a call answered: navigates for a redirect, renders anything else in place.
    fn show(&self, step: pb::FlowStep) {
        if let Some(Step::Redirect(r)) = &step.step {
            // Still busy: the page is leaving.
            if window().location().assign(&r.url).is_err() {
                self.flow.busy.set_value(false);
            }
            return;
        }
        self.flow.busy.set_value(false);
        self.flow.step.set(step);
        // After the new step is in the DOM: the title as the server's page would have it, the
        // focus on its first field, then tell tests.
        let issuer = self.page.issuer.clone();
        request_animation_frame(move || {
            let doc = document();
            if let Ok(Some(h1)) = doc.query_selector(&format!("#{APP_ROOT_ID} h1"))
                && let Some(title) = h1.text_content()
            {
                doc.set_title(&format!("{} – {issuer}", title.trim()));
            }
            focus_autofocus();
            if let Some(html) = doc.document_element() {
                let n = html.get_attribute("data-step").and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
                let _ = html.set_attribute("data-step", &(n + 1).to_string());
            }
        });
    }
}

/// Entry point, run by the JS module once the WASM is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    let document = document();
    let Some(data) = document.get_element_by_id(STEP_ELEMENT_ID).and_then(|e| e.text_content()) else {
        return;
    };
    let Ok(embedded) = serde_json::from_str::<Embedded<pb::FlowStep>>(&data) else {
        // Keep the no-JS page.
        leptos::logging::warn!("oxidex: the page's step is not readable; keeping the plain page");
        return;
    };
    let Some(root) = document.get_element_by_id(APP_ROOT_ID) else { return };
    let Ok(root) = root.dyn_into::<web_sys::HtmlElement>() else { return };
    let locale = Locale::from_tag(&embedded.ctx.locale).unwrap_or_default();
    let page = embedded.ctx;
    let step = embedded.step;
    let client_logo = match &step.step {
        Some(Step::Chooser(c)) => c.client.as_ref(),
        Some(Step::PasswordForm(f)) => f.client.as_ref(),
        Some(Step::Approval(a)) => a.client.as_ref(),
        _ => None,
    }
    .map(|c| c.logo_url.as_str());
    let images: Vec<String> =
        [Some(page.logo_url.as_str()), client_logo].into_iter().flatten().filter_map(origin_of).collect();
    root.set_inner_html("");
    mount_to(root, move || {
        let flow = Flow { step: RwSignal::new(step), busy: StoredValue::new(false) };
        let ctx = Ctx { page, locale, flow, images };
        move || render(&ctx, flow.step.get())
    })
    .forget();
    // The no-JS input that had focus is gone: focus the new one.
    focus_autofocus();
    // Lets tests and measurements see when the app has rendered.
    if let Some(html) = document.document_element() {
        if let Some(ms) = window().performance().map(|p| p.now()) {
            let _ = html.set_attribute("data-app-ms", &format!("{ms:.1}"));
        }
        let _ = html.set_attribute("data-app", "rendered");
    }
}

/// Focuses the first `[data-autofocus]` element of the app.
fn focus_autofocus() {
    if let Ok(Some(el)) = document().query_selector(&format!("#{APP_ROOT_ID} [data-autofocus]"))
        && let Ok(el) = el.dyn_into::<web_sys::HtmlElement>()
    {
        let _ = el.focus();
    }
}

/// The `oxidex.v1.Flow` call a form's submission makes.
#[derive(Clone)]
enum Submit {
    PasswordLogin { connector_id: String },
    Approve,
    VerifyUserCode,
}

/// One call, built from the form. `browser_secret` and `client_ip` stay empty: the gateway
/// fills them from the cookie and the connection.
enum Call {
    PasswordLogin(pb::PasswordLoginRequest),
    Approve(pb::ApproveRequest),
    VerifyUserCode(pb::VerifyUserCodeRequest),
}

impl Call {
    async fn run(self, base: &str) -> Result<pb::FlowStep, tonic::Status> {
        let origin = window().location().origin().unwrap_or_default();
        let transport = tonic_web_wasm_client::Client::new(format!("{origin}{base}{GRPC_WEB_PATH}"));
        let mut client = FlowClient::new(transport);
        let answer = match self {
            Call::PasswordLogin(r) => client.password_login(r).await,
            Call::Approve(r) => client.approve(r).await,
            Call::VerifyUserCode(r) => client.verify_user_code(r).await,
        };
        answer.map(tonic::Response::into_inner)
    }
}

/// The submit handler of the flow's forms: the call over gRPC-web instead of the page load,
/// the form's own submission when the call fails.
fn on_submit(ctx: &Ctx, what: Submit) -> impl Fn(leptos::ev::SubmitEvent) + 'static {
    let ctx = ctx.clone();
    move |ev: leptos::ev::SubmitEvent| {
        let Some(form) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok()) else {
            return;
        };
        ev.prevent_default();
        if ctx.flow.busy.get_value() {
            return;
        }
        let submitter = ev.submitter();
        let data = web_sys::FormData::new_with_form(&form).ok();
        let field = |name: &str| data.as_ref().and_then(|d| d.get(name).as_string()).unwrap_or_default();
        let call = match &what {
            Submit::PasswordLogin { connector_id } => Call::PasswordLogin(pb::PasswordLoginRequest {
                request_id: field("req"),
                connector_id: connector_id.clone(),
                username: field("login"),
                password: field("password"),
                ..Default::default()
            }),
            Submit::Approve => Call::Approve(pb::ApproveRequest {
                request_id: field("req"),
                hmac: field("hmac"),
                approve: submitter.as_ref().and_then(|b| b.get_attribute("value")).as_deref()
                    == Some("approve"),
                ..Default::default()
            }),
            Submit::VerifyUserCode => Call::VerifyUserCode(pb::VerifyUserCodeRequest {
                user_code: field("user_code"),
                ..Default::default()
            }),
        };
        ctx.flow.busy.set_value(true);
        let ctx = ctx.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match call.run(&ctx.page.base).await {
                Ok(step) => ctx.show(step),
                Err(status) => {
                    leptos::logging::warn!(
                        "oxidex: the gRPC-web call failed ({:?}); submitting the form instead",
                        status.code()
                    );
                    submit_natively(&form, submitter.as_ref());
                }
            }
        });
    }
}

/// Submits `form` as the browser would have without the app. `submit()` sends no submitter, so
/// its name and value (the consent's approve or deny) go along as a hidden input.
fn submit_natively(form: &web_sys::HtmlFormElement, submitter: Option<&web_sys::HtmlElement>) {
    if let Some(b) = submitter
        && let (Some(name), Some(value)) = (b.get_attribute("name"), b.get_attribute("value"))
        && let Ok(input) = document().create_element("input")
    {
        let _ = input.set_attribute("type", "hidden");
        let _ = input.set_attribute("name", &name);
        let _ = input.set_attribute("value", &value);
        let _ = form.append_child(&input);
    }
    form.submit().unwrap_or_else(|_| leptos::logging::warn!("oxidex: the form could not be submitted"));
}

fn render(ctx: &Ctx, step: pb::FlowStep) -> AnyView {
    match step.step {
        Some(Step::Chooser(c)) => chooser(ctx, c),
        Some(Step::PasswordForm(f)) => password_form(ctx, f),
        Some(Step::Approval(a)) => approval(ctx, a),
        Some(Step::Oob(o)) => oob(ctx, o),
        Some(Step::DeviceSuccess(d)) => device_success(ctx, d),
        Some(Step::DeviceEntry(d)) => device_entry(ctx, d),
        Some(Step::Error(e)) => error_page(ctx, e),
        // Redirects never reach a page.
        Some(Step::Redirect(_)) | None => {
            error_page(ctx, pb::ErrorPage { code: "internal".into(), ..Default::default() })
        }
    }
}

fn client_name(client: Option<&pb::ClientInfo>) -> String {
    match client {
        Some(c) if !c.name.is_empty() => c.name.clone(),
        Some(c) => c.id.clone(),
        None => String::new(),
    }
}

/// The client's logo (decorative: its name is in the text next to it) and the intro line.
fn intro(ctx: &Ctx, client: Option<&pb::ClientInfo>) -> impl IntoView {
    let name = client_name(client);
    let logo = client.map(|c| c.logo_url.clone()).filter(|l| ctx.image_allowed(l));
    let text = if name.is_empty() {
        ctx.t(Msg::ChooseMethod).to_owned()
    } else {
        ctx.fill(Msg::LogInToContinue, &[("client", &name)])
    };
    view! {
        <div class="ox-client">
            {logo.map(|src| view! { <img src=src alt="" /> })}
            <p class="ox-muted">{text}</p>
        </div>
    }
}

/// An SVG icon by connector type (24x24, decorative).
fn connector_icon(kind: &str) -> &'static str {
    match kind {
        // A key: the password database and password connectors.
        "local" | "ldap" | "mockPassword" | "keystone" | "atlassian-crowd" => {
            "M7 14a3 3 0 1 1 0-6 3 3 0 0 1 0 6zm5.65-4A6 6 0 1 0 12.65 14H16v3h3v-3h2v-4z"
        }
        // A cat silhouette for GitHub.
        "github" => {
            "M12 2a10 10 0 0 0-3.16 19.49c.5.09.68-.22.68-.48v-1.7c-2.78.6-3.37-1.34-3.37-1.34-.45-1.16-1.1-1.46-1.1-1.46-.9-.62.07-.6.07-.6 1 .07 1.53 1.03 1.53 1.03.89 1.52 2.34 1.08 2.91.83.09-.65.35-1.09.63-1.34-2.22-.25-4.55-1.11-4.55-4.94 0-1.1.39-1.99 1.03-2.69-.1-.25-.45-1.27.1-2.65 0 0 .84-.27 2.75 1.02a9.6 9.6 0 0 1 5 0c1.91-1.29 2.75-1.02 2.75-1.02.55 1.38.2 2.4.1 2.65.64.7 1.03 1.6 1.03 2.69 0 3.84-2.34 4.68-4.57 4.93.36.31.68.92.68 1.85v2.74c0 .27.18.58.69.48A10 10 0 0 0 12 2z"
        }
        "gitlab" => {
            "M12 21.4 15.7 10H8.3zM12 21.4 8.3 10H3.1zM3.1 10l-1.1 3.5a.8.8 0 0 0 .3.9L12 21.4zM3.1 10h5.2L6.1 3.2a.4.4 0 0 0-.7 0zM12 21.4 15.7 10h5.2zM20.9 10l1.1 3.5a.8.8 0 0 1-.3.9L12 21.4zM20.9 10h-5.2l2.2-6.8a.4.4 0 0 1 .7 0z"
        }
        "google" => {
            "M21.6 12.2c0-.7-.1-1.4-.2-2H12v3.8h5.4a4.6 4.6 0 0 1-2 3v2.5h3.2c1.9-1.7 3-4.3 3-7.3zM12 22c2.7 0 5-.9 6.6-2.5l-3.2-2.5c-.9.6-2 1-3.4 1-2.6 0-4.8-1.8-5.6-4.1H3.1v2.6A10 10 0 0 0 12 22zM6.4 13.9a6 6 0 0 1 0-3.8V7.5H3.1a10 10 0 0 0 0 9zM12 6c1.5 0 2.8.5 3.8 1.5l2.9-2.9A10 10 0 0 0 3.1 7.5l3.3 2.6C7.2 7.8 9.4 6 12 6z"
        }
        "microsoft" => "M3 3h8.5v8.5H3zm9.5 0H21v8.5h-8.5zM3 12.5h8.5V21H3zm9.5 0H21V21h-8.5z",
        // A person for everything else (OIDC, SAML, OAuth, the mock callback).
        _ => "M12 12a5 5 0 1 0 0-10 5 5 0 0 0 0 10zm0 2c-4.4 0-8 2.2-8 5v3h16v-3c0-2.8-3.6-5-8-5z",
    }
}

fn chooser(ctx: &Ctx, c: pb::ConnectorChooser) -> AnyView {
    let items = c
        .connectors
        .iter()
        .map(|conn| {
            let name = if conn.name.is_empty() { conn.id.clone() } else { conn.name.clone() };
            let href =
                format!("{}?req={}", ctx.url(&format!("/auth/{}", encode(&conn.id))), encode(&c.request_id));
            let label = ctx.fill(Msg::LogInWith, &[("name", &name)]);
            let icon = connector_icon(&conn.r#type);
            view! {
                <li>
                    <a href=href data-connector=conn.id.clone()>
                        <svg class="ox-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
                            <path d=icon></path>
                        </svg>
                        <span>{label}</span>
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <h1>{ctx.t(Msg::LogIn)}</h1>
        {intro(ctx, c.client.as_ref())}
        <ul class="ox-connectors">{items}</ul>
    }
    .into_any()
}

/// A countdown of `seconds`, ticking once a second; 0 when there is nothing to wait for.
fn countdown(seconds: i64) -> ReadSignal<i64> {
    let (left, set_left) = signal(seconds.max(0));
    if seconds > 0 {
        let handle = StoredValue::new_local(None::<IntervalHandle>);
        let h = set_interval_with_handle(
            move || {
                set_left.update(|s| *s = (*s - 1).max(0));
                if left.get_untracked() == 0
                    && let Some(h) = handle.get_value()
                {
                    h.clear();
                }
            },
            Duration::from_secs(1),
        )
        .ok();
        handle.set_value(h);
        // A step rendered in place replaces this one: stop ticking with it.
        if let Some(h) = h {
            on_cleanup(move || h.clear());
        }
    }
    left
}

/// The alert of a failed attempt, updated while a throttling wait runs down.
fn attempt_alert(
    ctx: &Ctx,
    invalid: bool,
    retry_after: i64,
    invalid_msg: Msg,
) -> (impl IntoView, ReadSignal<i64>) {
    let left = countdown(retry_after);
    let ctx = ctx.clone();
    let text = move || {
        let s = left.get();
        if retry_after > 0 && s > 0 {
            ctx.fill(Msg::Throttled, &[("seconds", &s.to_string())])
        } else if retry_after > 0 {
            ctx.t(Msg::ThrottleOver).to_owned()
        } else if invalid {
            ctx.t(invalid_msg).to_owned()
        } else {
            String::new()
        }
    };
    let shown = invalid || retry_after > 0;
    (shown.then(|| view! { <p class="ox-alert" role="alert" id="ox-alert">{text}</p> }), left)
}

fn password_form(ctx: &Ctx, f: pb::PasswordForm) -> AnyView {
    let prompt = messages::username_prompt(&f.username_prompt, ctx.locale);
    let action = ctx.url(&format!("/auth/{}/login", encode(&f.connector_id)));
    let submit = on_submit(ctx, Submit::PasswordLogin { connector_id: f.connector_id.clone() });
    let (alert, left) = attempt_alert(ctx, f.invalid, f.retry_after_seconds, Msg::InvalidCredentials);
    let waiting = move || left.get() > 0;
    let described = (f.invalid || f.retry_after_seconds > 0).then_some("ox-alert");
    // After a failed attempt the username is prefilled: start in the password field.
    let (user_focus, pass_focus) = if f.username.is_empty() { (Some(""), None) } else { (None, Some("")) };
    let back = f.show_back_link.then(|| {
        view! {
            <p>
                <a href="#" on:click=move |ev: leptos::ev::MouseEvent| {
                    ev.prevent_default();
                    if let Ok(h) = window().history() {
                        let _ = h.back();
                    }
                }>{ctx.t(Msg::OtherMethod)}</a>
            </p>
        }
    });
    view! {
        <h1>{ctx.t(Msg::LogIn)}</h1>
        {intro(ctx, f.client.as_ref())}
        {alert}
        <form method="post" action=action on:submit=submit>
            <input type="hidden" name="req" value=f.request_id.clone() />
            <label for="login">{prompt}</label>
            <input id="login" name="login" type="text" value=f.username.clone() autocomplete="username"
                required="" aria-describedby=described data-autofocus=user_focus />
            <label for="password">{ctx.t(Msg::Password)}</label>
            <input id="password" name="password" type="password" autocomplete="current-password"
                required="" aria-describedby=described data-autofocus=pass_focus />
            <button type="submit" class="ox-full" disabled=waiting>{ctx.t(Msg::LogIn)}</button>
        </form>
        {back}
    }
    .into_any()
}

fn approval(ctx: &Ctx, a: pb::Approval) -> AnyView {
    let client = client_name(a.client.as_ref());
    let logo = a.client.as_ref().map(|c| c.logo_url.clone()).filter(|l| ctx.image_allowed(l));
    let who = match (a.username.is_empty(), a.email.is_empty()) {
        (false, false) => format!("{} ({})", a.username, a.email),
        (false, true) => a.username.clone(),
        (true, false) => a.email.clone(),
        (true, true) => String::new(),
    };
    let scopes = a
        .scopes
        .iter()
        .map(|s| {
            let text = messages::scope_text(&s.scope, ctx.locale).unwrap_or_else(|| {
                if s.description.is_empty() { s.scope.clone() } else { s.description.clone() }
            });
            view! { <li>{text}</li> }
        })
        .collect_view();
    view! {
        <h1>{ctx.t(Msg::GrantAccessTitle)}</h1>
        <div class="ox-client">
            {logo.map(|src| view! { <img src=src alt="" /> })}
            <p><strong>{ctx.fill(Msg::WouldLikeTo, &[("client", &client)])}</strong></p>
        </div>
        <ul class="ox-scopes">{scopes}</ul>
        {(!who.is_empty()).then(|| view! { <p class="ox-muted">{ctx.fill(Msg::LoggedInAs, &[("user", &who)])}</p> })}
        <form method="post" action=ctx.url("/approval") on:submit=on_submit(ctx, Submit::Approve)>
            <input type="hidden" name="req" value=a.request_id.clone() />
            <input type="hidden" name="hmac" value=a.hmac.clone() />
            <div class="ox-actions">
                <button type="submit" name="approval" value="approve" data-autofocus="">{ctx.t(Msg::Approve)}</button>
                <button type="submit" name="approval" value="rejected" class="ox-secondary">{ctx.t(Msg::Deny)}</button>
            </div>
        </form>
    }
    .into_any()
}

fn oob(ctx: &Ctx, o: pb::OobCode) -> AnyView {
    let (status, set_status) = signal(String::new());
    let code = o.code.clone();
    let copied = ctx.t(Msg::Copied);
    let copy = move |_| {
        let clipboard = window().navigator().clipboard();
        let promise = clipboard.write_text(&code);
        wasm_bindgen_futures::spawn_local(async move {
            if wasm_bindgen_futures::JsFuture::from(promise).await.is_ok() {
                set_status.set(copied.to_owned());
            }
        });
    };
    view! {
        <h1>{ctx.t(Msg::LoginSuccessful)}</h1>
        <p>{ctx.t(Msg::OobIntro)}</p>
        <label for="code">{ctx.t(Msg::OobLabel)}</label>
        <input id="code" class="ox-code" type="text" readonly="" value=o.code.clone() data-autofocus="" />
        <button type="button" on:click=copy>{ctx.t(Msg::Copy)}</button>
        <p class="ox-status" role="status" aria-live="polite">{move || status.get()}</p>
    }
    .into_any()
}

fn device_success(ctx: &Ctx, d: pb::DeviceSuccess) -> AnyView {
    let client = client_name(d.client.as_ref());
    let text = if client.is_empty() {
        ctx.t(Msg::DeviceDone).to_owned()
    } else {
        ctx.fill(Msg::DeviceDoneClient, &[("client", &client)])
    };
    view! {
        <h1>{ctx.t(Msg::LoginSuccessful)}</h1>
        <p role="status">{text}</p>
    }
    .into_any()
}

/// The user code as typed, normalised the way codes are shown: upper case, `XXXX-XXXX`.
fn normalise_user_code(raw: &str) -> String {
    let chars: Vec<char> =
        raw.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    if chars.len() == 8 {
        let (a, b) = chars.split_at(4);
        format!("{}-{}", a.iter().collect::<String>(), b.iter().collect::<String>())
    } else {
        raw.trim().to_ascii_uppercase()
    }
}

fn device_entry(ctx: &Ctx, d: pb::DeviceEntry) -> AnyView {
    let (alert, left) = attempt_alert(ctx, d.invalid, d.retry_after_seconds, Msg::DeviceInvalid);
    let waiting = move || left.get() > 0;
    let (code, set_code) = signal(d.user_code.clone());
    let described = (d.invalid || d.retry_after_seconds > 0).then_some("ox-alert");
    view! {
        <h1>{ctx.t(Msg::DeviceTitle)}</h1>
        {alert}
        <p id="ox-device-intro">{ctx.t(Msg::DeviceIntro)}</p>
        <form method="post" action=ctx.url("/device/auth/verify_code") on:submit=on_submit(ctx, Submit::VerifyUserCode)>
            <label for="user_code">{ctx.t(Msg::DeviceLabel)}</label>
            <input id="user_code" name="user_code" class="ox-code" type="text" autocomplete="off"
                autocapitalize="characters" spellcheck="false" required="" data-autofocus=""
                aria-describedby=described
                prop:value=move || code.get()
                on:change=move |ev| set_code.set(normalise_user_code(&event_target_value(&ev))) />
            <button type="submit" class="ox-full" disabled=waiting>{ctx.t(Msg::Continue)}</button>
        </form>
    }
    .into_any()
}

fn error_page(ctx: &Ctx, e: pb::ErrorPage) -> AnyView {
    let (title, message) = match messages::error_text(&e.code) {
        Some((t, m)) => (ctx.t(t).to_owned(), m.map_or_else(|| e.message.clone(), |m| ctx.t(m).to_owned())),
        None if e.title.is_empty() => (ctx.t(Msg::ErrorTitle).to_owned(), e.message.clone()),
        None => (e.title.clone(), e.message.clone()),
    };
    view! {
        <h1>{title}</h1>
        <p class="ox-alert" role="alert">{message}</p>
    }
    .into_any()
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
