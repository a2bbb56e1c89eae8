//! Plain HTTP helpers of the black-box tests: client authentication of a form POST, and an
//! answer read completely with its OAuth assertions.

use reqwest::header::HeaderMap;
use serde_json::Value;

/// How a request identifies the client.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// `client_secret_basic`.
    Basic(&'a str, &'a str),
    /// `client_secret_post`.
    Post(&'a str, &'a str),
    /// `client_id` in the body, no secret (a public client).
    Id(&'a str),
    /// No client identification at all.
    Anonymous,
}

/// An HTTP answer, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        Self { status, headers, body }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.body))
    }

    /// The `error` member of an OAuth error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error member: {}", self.body)).to_owned()
    }

    pub fn field(&self, name: &str) -> String {
        self.json()[name].as_str().unwrap_or_else(|| panic!("no {name} in {}", self.body)).to_owned()
    }

    pub fn int(&self, name: &str) -> i64 {
        self.json()[name].as_i64().unwrap_or_else(|| panic!("no integer {name} in {}", self.body))
    }

    pub fn has(&self, name: &str) -> bool {
        self.json().get(name).is_some()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    /// Asserts a 200.
    #[track_caller]
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(self.status, 200, "{what}: {}", self.body);
    }

    /// Asserts an OAuth error with this status and code, and that no token came with it.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "expected {status} {error}, got {}: {}", self.status, self.body);
        assert_eq!(self.error(), error, "{}", self.body);
        for t in ["access_token", "id_token", "refresh_token"] {
            assert!(!self.has(t), "an error response carries {t}: {}", self.body);
        }
    }

    /// Asserts `Cache-Control: no-store`.
    #[track_caller]
    pub fn assert_no_store(&self, what: &str) {
        let cc = self.header("cache-control").unwrap_or_default();
        assert!(cc.contains("no-store"), "{what}: Cache-Control {cc:?}");
    }
}

/// A client that never follows redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A form POST to `url` with client authentication `auth`.
pub async fn form_post(
    client: &reqwest::Client,
    url: &str,
    auth: Auth<'_>,
    params: &[(&str, &str)],
) -> Reply {
    let mut form: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let mut req = client.post(url);
    match auth {
        Auth::Basic(id, secret) => req = req.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => {
            form.push(("client_id".into(), id.into()));
            form.push(("client_secret".into(), secret.into()));
        }
        Auth::Id(id) => form.push(("client_id".into(), id.into())),
        Auth::Anonymous => {}
    }
    Reply::read(req.form(&form).send().await.unwrap()).await
}
