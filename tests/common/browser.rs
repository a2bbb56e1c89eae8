//! A cookie-keeping "browser" for black-box tests of the browser flow: it fetches `/auth`,
//! follows the provider's redirects by hand (never automatically, so every status and
//! `Location` can be asserted on), fills in the password form, approves the consent page and
//! stops at the redirect to the client, whose URL carries the code.
//!
//! Each `Browser` has its own cookie jar, so a second `Browser` is a second browser (an
//! attacker's). The HTML helpers ([`form`], [`absolute`]) work on the provider's own pages.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// The action and hidden inputs of the first form of a page (`&amp;` decoded).
pub fn form(html: &str) -> (String, Vec<(String, String)>) {
    let action = html
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no form in page:\n{html}"))
        .replace("&amp;", "&");
    let mut fields = Vec::new();
    for input in html.split("<input").skip(1) {
        let attr = |name: &str| {
            input
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(|s| s.replace("&amp;", "&"))
        };
        if attr("type").as_deref() == Some("hidden")
            && let (Some(n), Some(v)) = (attr("name"), attr("value"))
        {
            fields.push((n, v));
        }
    }
    (action, fields)
}

/// `location` made absolute against `base` (scheme, host and port, no path).
pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") { location.to_owned() } else { format!("{base}{location}") }
}

/// The `href` values of a page's links (`&amp;` decoded).
pub fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .collect()
}

/// The `Location` header of a response, if any.
pub fn location(headers: &HeaderMap) -> Option<String> {
    headers.get(reqwest::header::LOCATION).map(|v| v.to_str().unwrap().to_owned())
}

/// An HTML page the browser stopped at.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The URL the page was fetched from (or posted to).
    pub url: String,
    pub html: String,
}

impl Page {
    /// The page's first form, its action made absolute.
    pub fn form(&self, origin: &str) -> Form {
        let (action, fields) = form(&self.html);
        Form { action: absolute(origin, &action), fields }
    }

    pub fn is_password_form(&self) -> bool {
        self.html.contains("name=\"password\"")
    }

    pub fn is_approval(&self) -> bool {
        self.html.contains("name=\"approval\"")
    }
}

/// A form to submit: its absolute action and fields.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// The form with `name` set to `value` (replacing an existing field of that name).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.fields.retain(|(k, _)| k != name);
        self.fields.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The form without the field `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.fields.retain(|(k, _)| k != name);
        self
    }
}

/// Where following the provider's redirects ended.
#[derive(Debug)]
pub enum Stop {
    /// A page of the provider (a form, or an error page).
    Page(Page),
    /// A redirect out of the provider, to the client (or an upstream).
    Left(url::Url),
}

impl Stop {
    pub fn page(self) -> Page {
        match self {
            Stop::Page(p) => p,
            Stop::Left(u) => panic!("expected a page, the browser was sent to {u}"),
        }
    }

    pub fn left(self) -> url::Url {
        match self {
            Stop::Left(u) => u,
            Stop::Page(p) => {
                panic!("expected a redirect to the client, got a {} page:\n{}", p.status, p.html)
            }
        }
    }
}

/// A browser: one cookie jar, redirects followed by hand.
#[derive(Debug, Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    /// The issuer URL; redirects below it are followed, others end the walk.
    pub issuer: String,
    /// The issuer's scheme, host and port.
    pub origin: String,
}

impl Browser {
    pub fn new(issuer: &str) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let parsed = url::Url::parse(issuer).unwrap();
        let origin = parsed[..url::Position::BeforePath].to_owned();
        Self { http, issuer: issuer.trim_end_matches('/').to_owned(), origin }
    }

    /// A GET without following redirects.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// A form POST without following redirects.
    pub async fn post(&self, url: &str, fields: &[(String, String)]) -> reqwest::Response {
        self.http.post(url).form(fields).send().await.unwrap()
    }

    /// Whether `url` is the provider's (below the issuer).
    fn is_provider(&self, url: &str) -> bool {
        url.starts_with(&format!("{}/", self.issuer)) || url.starts_with(&format!("{}?", self.issuer))
    }

    /// Follows redirects inside the provider, starting from `response` (fetched from `url`),
    /// until a page or a redirect that leaves the provider.
    pub async fn follow(&self, mut response: reqwest::Response, mut url: String) -> Stop {
        for _ in 0..16 {
            let status = response.status();
            if status.is_redirection() {
                let loc = absolute(
                    &self.origin,
                    &location(response.headers()).unwrap_or_else(|| panic!("{status} without Location")),
                );
                if !self.is_provider(&loc) {
                    return Stop::Left(url::Url::parse(&loc).unwrap());
                }
                response = self.get(&loc).await;
                url = loc;
                continue;
            }
            let headers = response.headers().clone();
            let html = response.text().await.unwrap();
            return Stop::Page(Page { status, headers, url, html });
        }
        panic!("more than 16 redirects inside the provider");
    }

    /// Opens `url` and follows the provider's redirects.
    pub async fn open(&self, url: &str) -> Stop {
        let response = self.get(url).await;
        self.follow(response, url.to_owned()).await
    }

    /// Submits a form and follows the provider's redirects.
    pub async fn submit(&self, form: &Form) -> Stop {
        let response = self.post(&form.action, &form.fields).await;
        self.follow(response, form.action.clone()).await
    }

    /// Logs in at a password form: the POST must answer 302 or 303 (never 307, which would
    /// re-POST the password onwards; RFC 9700 §4.12).
    async fn log_in(&self, page: &Page, login: Option<(&str, &str)>) -> Stop {
        let (user, password) =
            login.unwrap_or_else(|| panic!("a password form, but no credentials:\n{}", page.html));
        let form = page.form(&self.origin).with("login", user).with("password", password);
        let response = self.post(&form.action, &form.fields).await;
        let status = response.status();
        assert!(
            matches!(status.as_u16(), 302 | 303),
            "the login POST answered {status}:\n{}",
            response.text().await.unwrap()
        );
        self.follow(response, form.action.clone()).await
    }

    /// Runs the flow from `url` up to the consent page (logging in where a password form
    /// appears) and returns the page.
    pub async fn until_approval(&self, url: &str, login: Option<(&str, &str)>) -> Page {
        let mut stop = self.open(url).await;
        for _ in 0..4 {
            let page = stop.page();
            assert_eq!(page.status, 200, "the flow stopped at {}:\n{}", page.url, page.html);
            if page.is_approval() {
                return page;
            }
            assert!(page.is_password_form(), "unexpected page at {}:\n{}", page.url, page.html);
            stop = self.log_in(&page, login).await;
        }
        panic!("no consent page");
    }

    /// Runs the whole flow from an `/auth` URL: logs in where a password form appears,
    /// approves the consent page, and returns the redirect to the client.
    pub async fn authorize(&self, url: &str, login: Option<(&str, &str)>) -> url::Url {
        let mut stop = self.open(url).await;
        for _ in 0..4 {
            let page = match stop {
                Stop::Left(u) => return u,
                Stop::Page(p) => p,
            };
            assert_eq!(page.status, 200, "the flow stopped at {}:\n{}", page.url, page.html);
            stop = if page.is_approval() {
                let form = page.form(&self.origin).with("approval", "approve");
                self.submit(&form).await
            } else if page.is_password_form() {
                self.log_in(&page, login).await
            } else {
                panic!("unexpected page at {}:\n{}", page.url, page.html);
            };
        }
        panic!("the flow did not reach the client");
    }

    /// Runs the whole flow and returns the authorization code of the client redirect.
    pub async fn code(&self, url: &str, login: Option<(&str, &str)>) -> String {
        let back = self.authorize(url, login).await;
        query_param(&back, "code").unwrap_or_else(|| panic!("no code in the client redirect {back}"))
    }
}

/// A query parameter of a URL.
pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The parameters of a URL's fragment (where implicit and hybrid responses put theirs).
pub fn fragment_params(url: &url::Url) -> std::collections::HashMap<String, String> {
    url.fragment()
        .map(|f| url::form_urlencoded::parse(f.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}
