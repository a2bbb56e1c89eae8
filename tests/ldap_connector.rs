//! The `ldap` connector against a real OpenLDAP `slapd` (Debian packages `slapd` and
//! `ldap-utils`; `cargo xtask test` installs them when missing). Every test starts its own
//! slapd on loopback (plain LDAP with StartTLS, and LDAPS) with an mdb database in a temp dir,
//! loaded from the LDIF below, and a test CA and server certificate made here with rcgen. Then
//! the real `oxidex` binary logs users in through its password form.
//!
//! The directory:
//!
//! ```text
//! dc=example,dc=org
//! ├ ou=services  cn=oxidex (the service account, the only one that may read entries)
//! ├ ou=people    uid=jane, uid=john, uid=admin, uid=tim (ext), uid=deep
//! └ ou=groups    developers {jane} ⊂ engineering ⊂ staff          (groupOfNames, member = DN)
//!                cycle-a {cycle-b}, cycle-b {cycle-a, jane}         (a membership cycle)
//!                ops {john}
//!                posix-users (posixGroup, memberUid = jane)         (a second userMatcher)
//!                contractors {uid=tim (ext)}                        (a DN with filter specials)
//!                chain-00 {deep} ⊂ chain-01 ⊂ ... ⊂ chain-12          (deeper than followed)
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::browser::{Browser, Page, query_param};
use common::rp::{CLIENT_ID, CLIENT_SECRET, REDIRECT, static_setup};
use common::{Ports, Server, config, free_port, sqlite_storage};

const BASE: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "root-secret-9";
const SERVICE_DN: &str = "cn=oxidex,ou=services,dc=example,dc=org";
const SERVICE_PW: &str = "bind-secret-7";
const JANE_DN: &str = "uid=jane,ou=people,dc=example,dc=org";
const JANE_PW: &str = "jane-password-1";
const ADMIN_PW: &str = "admin-password-2";
/// A user whose login name and DN hold filter specials, and whose password does too (the
/// password is never escaped: it is not part of any filter).
const TIM_DN: &str = "uid=tim (ext),ou=people,dc=example,dc=org";
const TIM_PW: &str = "p*(a)\\ss w0rd";

/// Jane's groups: direct ones, the nested ones, the cycle, and the posix group.
const JANE_GROUPS: &[&str] = &["developers", "engineering", "staff", "cycle-a", "cycle-b", "posix-users"];

/// A user at the bottom of a chain of 13 nested groups, one more than the connector follows
/// (direct groups plus `MAX_GROUP_DEPTH` = 10 levels).
const DEEP_PW: &str = "deep-password-4";
const CHAIN: usize = 13;

fn chain_ldif() -> String {
    let mut out = format!(
        "dn: uid=deep,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: deep\ncn: Deep\nsn: Deep\n\
         mail: deep@example.org\nuserPassword: {DEEP_PW}\n\n"
    );
    for i in 0..CHAIN {
        let member = if i == 0 {
            format!("uid=deep,ou=people,{BASE}")
        } else {
            format!("cn=chain-{:02},ou=groups,{BASE}", i - 1)
        };
        out.push_str(&format!(
            "dn: cn=chain-{i:02},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: chain-{i:02}\nmember: {member}\n\n"
        ));
    }
    out
}

fn ldif() -> String {
    format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {SERVICE_DN}\nobjectClass: person\ncn: oxidex\nsn: service\nuserPassword: {SERVICE_PW}\n\n\
         dn: {JANE_DN}\nobjectClass: inetOrgPerson\nuid: jane\ncn: Jane Doe\nsn: Doe\n\
         mail: jane@example.org\nuserPassword: {JANE_PW}\n\n\
         dn: uid=john,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: john\ncn: John Roe\nsn: Roe\n\
         mail: john@example.org\nuserPassword: john-password-3\n\n\
         dn: uid=admin,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: admin\ncn: Admin\nsn: Admin\n\
         mail: admin@example.org\nuserPassword: {ADMIN_PW}\n\n\
         dn: {TIM_DN}\nobjectClass: inetOrgPerson\nuid: tim (ext)\ncn: Tim\nsn: Tim\n\
         mail: tim@example.org\nuserPassword: {TIM_PW}\n\n\
         dn: cn=contractors,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: contractors\nmember: {TIM_DN}\n\n\
         dn: cn=developers,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: developers\nmember: {JANE_DN}\n\
         member: cn=placeholder,{BASE}\n\n\
         dn: cn=engineering,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: engineering\n\
         member: cn=developers,ou=groups,{BASE}\n\n\
         dn: cn=staff,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: staff\n\
         member: cn=engineering,ou=groups,{BASE}\n\n\
         dn: cn=cycle-a,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: cycle-a\n\
         member: cn=cycle-b,ou=groups,{BASE}\n\n\
         dn: cn=cycle-b,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: cycle-b\n\
         member: cn=cycle-a,ou=groups,{BASE}\nmember: {JANE_DN}\n\n\
         dn: cn=ops,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: ops\nmember: uid=john,ou=people,{BASE}\n\n\
         dn: cn=posix-users,ou=groups,{BASE}\nobjectClass: posixGroup\ncn: posix-users\ngidNumber: 5000\n\
         memberUid: jane\n\n"
    ) + &chain_ldif()
}

/// The test PKI: a CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key: String,
    other_ca_pem: String,
    /// A client certificate (for `clientCert`/`clientKey`) signed by the CA.
    client_pem: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("Oxidex LDAP test CA");
    let other = ca("Some other CA");
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    p.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "oxidex");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client = p.signed_by(&client_key, &issuer).unwrap();
    Pki {
        client_pem: client.pem(),
        client_key: client_key.serialize_pem(),
        ca_pem: issuer.pem(),
        server_pem: cert.pem(),
        server_key: key.serialize_pem(),
        other_ca_pem: other.pem(),
    }
}

/// A running slapd, killed when dropped.
struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    ldap_port: u16,
    ldaps_port: u16,
    pki: Pki,
    log: PathBuf,
}

fn require(binary: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: install the Debian packages `slapd ldap-utils` (cargo xtask test does)"
    );
}

impl Slapd {
    fn start() -> Slapd {
        Self::start_with("")
    }

    /// Starts slapd with `tls_extra` added to its global TLS settings.
    fn start_with(tls_extra: &str) -> Slapd {
        require("/usr/sbin/slapd");
        require("/usr/bin/ldapmodify");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pki = pki();
        std::fs::write(d.join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(d.join("other-ca.pem"), &pki.other_ca_pem).unwrap();
        std::fs::write(d.join("server.pem"), &pki.server_pem).unwrap();
        std::fs::write(d.join("server.key"), &pki.server_key).unwrap();
        std::fs::write(d.join("client.pem"), &pki.client_pem).unwrap();
        std::fs::write(d.join("client.key"), &pki.client_key).unwrap();
        std::fs::create_dir(d.join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {dir}/slapd.pid\n\
             TLSCACertificateFile {dir}/ca.pem\n\
             TLSCertificateFile {dir}/server.pem\n\
             TLSCertificateKeyFile {dir}/server.key\n\
             {tls_extra}\n\
             database mdb\n\
             maxsize 67108864\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {dir}/db\n\
             access to attrs=userPassword\n  by anonymous auth\n  by * none\n\
             access to *\n  by dn.exact=\"{SERVICE_DN}\" read\n  by * none\n",
            dir = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        std::fs::write(d.join("data.ldif"), ldif()).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .unwrap();
        assert!(out.status.success(), "slapadd failed: {}", String::from_utf8_lossy(&out.stderr));

        let (ldap_port, ldaps_port) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let log = d.join("slapd.log");
        let child = Self::spawn(d, ldap_port, ldaps_port, &log);
        let mut slapd = Slapd { child, dir, ldap_port, ldaps_port, pki, log };
        slapd.wait_until_up();
        slapd
    }

    fn spawn(dir: &Path, ldap_port: u16, ldaps_port: u16, log: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"))
            // Debug level "stats" (connections, binds, searches) to stderr; stays in the foreground.
            .args(["-d", "256"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = [self.ldap_port, self.ldaps_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("slapd exited ({status}):\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "slapd did not start:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops slapd: the directory becomes unreachable.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped slapd again, on the same ports with the same data.
    fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.ldap_port, self.ldaps_port, &self.log);
        self.wait_until_up();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Applies an LDIF change as the root DN with `ldapmodify`.
    fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("/usr/bin/ldapmodify")
            .args(["-x", "-H", &format!("ldap://127.0.0.1:{}", self.ldap_port), "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ldapmodify failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// How many simple binds as `dn` slapd has logged (attempts, successful or not).
    fn binds_as(&self, dn: &str) -> usize {
        self.log_text().matches(&format!("BIND dn=\"{dn}\" method=128")).count()
    }

    /// How many connections slapd has accepted.
    fn connections(&self) -> usize {
        self.log_text().matches(" ACCEPT from ").count()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The search settings every test connector shares: users by `uid`, groups by two matchers
/// (DN in `member`, followed recursively; `uid` in `memberUid`).
fn searches() -> serde_json::Value {
    serde_json::json!({
        "bindDN": SERVICE_DN,
        "bindPW": SERVICE_PW,
        "usernamePrompt": "Directory username",
        "userSearch": {
            "baseDN": format!("ou=people,{BASE}"),
            "filter": "(objectClass=inetOrgPerson)",
            "username": "uid",
            "idAttr": "uid",
            "emailAttr": "mail",
            "nameAttr": "cn",
            "preferredUsernameAttr": "uid",
        },
        "groupSearch": {
            "baseDN": format!("ou=groups,{BASE}"),
            "nameAttr": "cn",
            "userMatchers": [
                {"userAttr": "DN", "groupAttr": "member", "recursionGroupAttr": "DN"},
                {"userAttr": "uid", "groupAttr": "memberUid"},
            ],
        },
    })
}

fn connector(id: &str, transport: serde_json::Value) -> String {
    let mut config = searches();
    for (k, v) in transport.as_object().unwrap() {
        config[k] = v.clone();
    }
    // YAML is a superset of JSON: the config goes in as one JSON object.
    format!("- type: ldap\n  id: {id}\n  name: LDAP {id}\n  config: {config}\n")
}

/// The connectors of the tests: LDAPS with the CA inline (`ldap`), StartTLS with the CA file
/// (`starttls`), StartTLS and LDAPS trusting another CA (`starttls-wrong-ca`, `ldaps-wrong-ca`),
/// LDAPS with the system roots (`ldaps-system-roots`), plain LDAP (`plain`), and LDAPS to a
/// port that accepts connections but never answers (`silent`), and one whose CA file does not
/// exist (`broken`).
fn connectors(slapd: &Slapd, silent_port: u16) -> String {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(&slapd.pki.ca_pem);
    let ldaps = format!("127.0.0.1:{}", slapd.ldaps_port);
    let ldap = format!("127.0.0.1:{}", slapd.ldap_port);
    let list = [
        connector("ldap", serde_json::json!({"host": ldaps, "rootCAData": ca_data})),
        connector(
            "starttls",
            serde_json::json!({"host": ldap, "startTLS": true, "rootCA": slapd.path("ca.pem")}),
        ),
        connector(
            "starttls-wrong-ca",
            serde_json::json!({"host": ldap, "startTLS": true, "rootCA": slapd.path("other-ca.pem")}),
        ),
        connector("ldaps-wrong-ca", serde_json::json!({"host": ldaps, "rootCA": slapd.path("other-ca.pem")})),
        connector("ldaps-system-roots", serde_json::json!({"host": ldaps})),
        connector("plain", serde_json::json!({"host": ldap, "insecureNoSSL": true})),
        connector("silent", serde_json::json!({"host": format!("127.0.0.1:{silent_port}")})),
        connector("broken", serde_json::json!({"host": ldaps, "rootCA": slapd.path("missing-ca.pem")})),
    ];
    format!("connectors:\n{}", list.concat())
}

struct Setup {
    slapd: Slapd,
    server: Server,
    /// Listening, never accepting: the kernel completes TCP handshakes, nobody answers.
    _silent: std::net::TcpListener,
}

async fn setup() -> Setup {
    tokio::task::spawn_blocking(|| {
        let slapd = Slapd::start();
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let extra = format!(
            "{}oauth2:\n  passwordConnector: ldap\n{}",
            static_setup(),
            connectors(&slapd, silent.local_addr().unwrap().port())
        );
        let server =
            Server::start(Ports::new(), move |dir, ports| config(ports, &sqlite_storage(dir), &extra));
        Setup { slapd, server, _silent: silent }
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn auth_url(server: &Server, connector_id: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile groups offline_access")
        .append_pair("state", "st-1")
        .append_pair("connector_id", connector_id);
    url.into()
}

/// Opens the password form of `connector_id`.
async fn password_form(browser: &Browser, server: &Server, connector_id: &str) -> Page {
    let page = browser.open(&auth_url(server, connector_id)).await.page();
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.is_password_form(), "not a password form:\n{}", page.html);
    page
}

/// Submits a login at `connector_id`; the page answered (the form again, an error page).
async fn failed_login(server: &Server, connector_id: &str, user: &str, password: &str) -> Page {
    let browser = Browser::new(&server.issuer);
    let form = password_form(&browser, server, connector_id).await;
    let form = form.form(&browser.origin).with("login", user).with("password", password);
    let stop = browser.submit(&form).await;
    match stop {
        common::browser::Stop::Page(p) => p,
        common::browser::Stop::Left(u) => panic!("{user:?} / {password:?} logged in at {connector_id}: {u}"),
    }
}

/// Asserts the login was refused as wrong credentials: the form again, 401.
fn assert_refused(page: &Page, what: &str) {
    assert_eq!(page.status, 401, "{what}: {}", page.html);
    assert!(page.is_password_form(), "{what}: not the password form again:\n{}", page.html);
}

/// Logs in at `connector_id` and redeems the code: the token response.
async fn login(server: &Server, connector_id: &str, user: &str, password: &str) -> serde_json::Value {
    let browser = Browser::new(&server.issuer);
    let back = browser.authorize(&auth_url(server, connector_id), Some((user, password))).await;
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let (status, body) =
        token(server, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
            .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn token(server: &Server, params: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/token", server.issuer))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(params)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The claims of the response's ID token (its signature is checked by the OIDC suites).
fn id_claims(response: &serde_json::Value) -> serde_json::Value {
    let jwt = response["id_token"].as_str().expect("an id_token");
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

fn groups(claims: &serde_json::Value) -> Vec<String> {
    let mut g: Vec<String> = claims["groups"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    g.sort();
    g
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn ldaps_login_gives_claims_and_nested_groups() {
    let Setup { slapd, server, .. } = setup().await;
    let browser = Browser::new(&server.issuer);
    let form = password_form(&browser, &server, "ldap").await;
    assert!(form.html.contains("Directory username"), "usernamePrompt not shown:\n{}", form.html);

    let response = login(&server, "ldap", "jane", JANE_PW).await;
    let claims = id_claims(&response);
    assert_eq!(claims["email"], "jane@example.org", "{claims}");
    assert_eq!(claims["email_verified"], true, "{claims}");
    assert_eq!(claims["name"], "Jane Doe", "{claims}");
    assert_eq!(claims["preferred_username"], "jane", "{claims}");
    // Direct groups of both matchers, two levels of nesting, and a cycle walked once.
    assert_eq!(groups(&claims), sorted(JANE_GROUPS), "{claims}");
    assert!(response["refresh_token"].is_string(), "{response}");

    // john: one direct group, no nesting.
    let claims = id_claims(&login(&server, "ldap", "john", "john-password-3").await);
    assert_eq!(groups(&claims), vec!["ops".to_owned()], "{claims}");

    // Parentheses in the login name and the DN (escaped in both searches), `*()\` in the
    // password (not escaped: it is not part of a filter).
    // Nesting is followed 10 levels above the direct group, no further.
    let claims = id_claims(&login(&server, "ldap", "deep", DEEP_PW).await);
    let expected: Vec<String> = (0..=10).map(|i| format!("chain-{i:02}")).collect();
    assert_eq!(groups(&claims), expected, "{claims}");
    assert!(server.log_text().contains("deeper than the limit"));

    let claims = id_claims(&login(&server, "ldap", "tim (ext)", TIM_PW).await);
    assert_eq!(claims["email"], "tim@example.org", "{claims}");
    assert_eq!(groups(&claims), vec!["contractors".to_owned()], "{claims}");

    // The user bound as herself, on the LDAPS port, after the service account searched.
    assert!(slapd.binds_as(JANE_DN) >= 1, "{}", slapd.log_text());
    assert!(slapd.binds_as(SERVICE_DN) >= 2, "{}", slapd.log_text());
    let log = server.log_text();
    for secret in [JANE_PW, SERVICE_PW, "john-password-3"] {
        assert!(!log.contains(secret), "a password reached the log");
    }
}

#[tokio::test]
async fn wrong_passwords_and_filter_injection_never_log_in() {
    let Setup { slapd, server, .. } = setup().await;
    let page = failed_login(&server, "ldap", "jane", "not-her-password").await;
    assert_refused(&page, "wrong password");
    let page = failed_login(&server, "ldap", "nobody", JANE_PW).await;
    assert_refused(&page, "unknown user");

    // Unescaped, `admin)(uid=*` would find exactly uid=admin and `jan*` exactly jane, and the
    // correct passwords would then log in: escaped, no entry matches.
    for (user, password) in [
        ("admin)(uid=*", ADMIN_PW),
        ("jan*", JANE_PW),
        ("*", JANE_PW),
        ("*)(|(uid=*", JANE_PW),
        ("*)(uid=*))(|(uid=*", ADMIN_PW),
        ("admin\\", ADMIN_PW),
    ] {
        let page = failed_login(&server, "ldap", user, password).await;
        assert_refused(&page, user);
    }
    // A NUL byte: refused (by the form parser or the directory), never a login.
    let page = failed_login(&server, "ldap", "admin\u{0}", ADMIN_PW).await;
    assert!(matches!(page.status.as_u16(), 400 | 401), "{}: {}", page.status, page.html);
    // The escaped filters reached slapd as single equality assertions.
    let log = slapd.log_text();
    assert!(
        log.contains("(uid=admin\\29\\28uid=\\2A)") || log.contains("(uid=admin\\29\\28uid=\\2a)"),
        "{log}"
    );
    assert!(!log.contains("(uid=jan*)"), "{log}");
    // Only the wrong-password attempt bound as jane; no injected attempt bound as anyone.
    assert_eq!(slapd.binds_as(JANE_DN), 1, "{log}");
    assert_eq!(slapd.binds_as(&format!("uid=admin,ou=people,{BASE}")), 0, "{log}");
    // The reasons are in the server log; the passwords are not.
    let server_log = server.log_text();
    assert!(server_log.contains("the server rejected the password"), "{server_log}");
    assert!(server_log.contains("no single user entry"), "{server_log}");
    assert!(
        !server_log.contains(JANE_PW)
            && !server_log.contains(ADMIN_PW)
            && !server_log.contains("not-her-password")
    );
}

#[tokio::test]
async fn empty_and_blank_passwords_never_bind() {
    let Setup { slapd, server, .. } = setup().await;
    let before_binds = slapd.binds_as(JANE_DN);
    let before_connections = slapd.connections();
    for password in ["", " ", "   ", "\t", " \n "] {
        for connector in ["ldap", "plain"] {
            let page = failed_login(&server, connector, "jane", password).await;
            assert_refused(&page, &format!("{password:?} at {connector}"));
        }
    }
    // Not one bind, not even a connection: the connector refuses before talking to slapd.
    assert_eq!(slapd.binds_as(JANE_DN), before_binds, "{}", slapd.log_text());
    assert_eq!(slapd.connections(), before_connections, "{}", slapd.log_text());
    // jane's real password still works afterwards (the refusals were not lockouts).
    let claims = id_claims(&login(&server, "plain", "jane", JANE_PW).await);
    assert_eq!(claims["email"], "jane@example.org");
    assert!(slapd.binds_as(JANE_DN) > before_binds);
}

#[tokio::test]
async fn refresh_rereads_the_user_and_fails_with_invalid_grant_once_deleted() {
    let Setup { slapd, server, .. } = setup().await;
    let response = login(&server, "ldap", "jane", JANE_PW).await;
    assert_eq!(groups(&id_claims(&response)), sorted(JANE_GROUPS));
    let refresh_token = response["refresh_token"].as_str().unwrap().to_owned();

    // Jane leaves developers (and so engineering and staff) and joins ops; her name changes.
    slapd.modify(&format!(
        "dn: cn=developers,ou=groups,{BASE}\nchangetype: modify\ndelete: member\nmember: {JANE_DN}\n\n\
         dn: cn=ops,ou=groups,{BASE}\nchangetype: modify\nadd: member\nmember: {JANE_DN}\n\n\
         dn: {JANE_DN}\nchangetype: modify\nreplace: cn\ncn: Jane Smith\n"
    ));
    let (status, body) =
        token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
    assert_eq!(status, 200, "{body}");
    let claims = id_claims(&body);
    assert_eq!(groups(&claims), sorted(&["cycle-a", "cycle-b", "ops", "posix-users"]), "{claims}");
    assert_eq!(claims["name"], "Jane Smith", "{claims}");
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // Jane is deleted: the refresh is refused as invalid_grant, not a server error.
    slapd.modify(&format!("dn: {JANE_DN}\nchangetype: delete\n"));
    let (status, body) =
        token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // And stays refused (the token was revoked).
    let (status, body) =
        token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

#[tokio::test]
async fn starttls_and_ldaps_check_the_ca() {
    let Setup { slapd, server, .. } = setup().await;
    // StartTLS on the plain port, trusting the test CA from a file.
    let claims = id_claims(&login(&server, "starttls", "jane", JANE_PW).await);
    assert_eq!(claims["email"], "jane@example.org");
    assert_eq!(groups(&claims), sorted(JANE_GROUPS));
    // Plain LDAP with insecureNoSSL.
    let claims = id_claims(&login(&server, "plain", "john", "john-password-3").await);
    assert_eq!(claims["email"], "john@example.org");
    let binds = slapd.binds_as(JANE_DN);

    // The server's certificate is not signed by the CA these connectors trust (or, for the
    // system roots, by any CA the system knows): the login fails as "provider unavailable",
    // never a 500 and never a bind with the password over an unverified channel.
    for connector in ["starttls-wrong-ca", "ldaps-wrong-ca", "ldaps-system-roots"] {
        let page = failed_login(&server, connector, "jane", JANE_PW).await;
        assert_eq!(page.status, 503, "{connector}: {}", page.html);
    }
    assert_eq!(slapd.binds_as(JANE_DN), binds, "a password was sent over an unverified connection");

    // A connector that cannot open (its CA file is missing) is an error page naming nothing
    // secret, not a 500; the reason, with the key, is in the server log.
    let page = Browser::new(&server.issuer).open(&auth_url(&server, "broken")).await.page();
    assert!(matches!(page.status.as_u16(), 400..=499 | 503), "{}: {}", page.status, page.html);
    assert!(server.log_text().contains("rootCA"), "{}", server.log_text());
    let log = server.log_text();
    assert!(log.to_lowercase().contains("certificate"), "the TLS failure is not in the server log:\n{log}");
}

#[tokio::test]
async fn a_directory_that_never_answers_times_out_as_a_login_error() {
    // Bound as a whole: the listener must outlive the login.
    let setup = setup().await;
    let server = &setup.server;
    let started = Instant::now();
    let page = failed_login(server, "silent", "jane", JANE_PW).await;
    let took = started.elapsed();
    assert_eq!(page.status, 503, "{}", page.html);
    // The connect timeout is 10 s (TCP, TLS handshake); the request must not hang beyond it.
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(25), "took {took:?}");
    let log = server.log_text();
    assert!(log.contains("cannot connect to ldaps://127.0.0.1"), "{log}");
}

#[tokio::test]
async fn the_password_grant_goes_through_ldap_with_the_same_rules() {
    let Setup { slapd, server, .. } = setup().await;
    let grant = |user: &'static str, password: &'static str| {
        let server = &server;
        async move {
            token(
                server,
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                    ("scope", "openid email profile groups"),
                ],
            )
            .await
        }
    };
    let (status, body) = grant("jane", JANE_PW).await;
    assert_eq!(status, 200, "{body}");
    let claims = id_claims(&body);
    assert_eq!(claims["email"], "jane@example.org", "{claims}");
    assert_eq!(groups(&claims), sorted(JANE_GROUPS), "{claims}");
    let binds = slapd.binds_as(JANE_DN);
    for (user, password) in [
        ("jane", " "),
        ("jane", "\t"),
        ("jane", "wrong"),
        ("admin)(uid=*", ADMIN_PW),
        ("jan*", JANE_PW),
        ("admin\u{0}", ADMIN_PW),
    ] {
        let (status, body) = grant(user, password).await;
        assert!(matches!(status, 400 | 401), "{user:?}/{password:?}: {status} {body}");
        assert!(body["access_token"].is_null(), "{user:?}/{password:?} got a token: {body}");
    }
    // Only the wrong (non-blank) password reached slapd as a bind.
    assert_eq!(slapd.binds_as(JANE_DN), binds + 1, "{}", slapd.log_text());
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_directory_demands_one() {
    let (slapd, server) = tokio::task::spawn_blocking(|| {
        let slapd = Slapd::start_with("TLSVerifyClient demand");
        let ldaps = format!("127.0.0.1:{}", slapd.ldaps_port);
        let list = [
            connector(
                "mtls",
                serde_json::json!({"host": ldaps, "rootCA": slapd.path("ca.pem"),
                    "clientCert": slapd.path("client.pem"), "clientKey": slapd.path("client.key")}),
            ),
            connector("no-client-cert", serde_json::json!({"host": ldaps, "rootCA": slapd.path("ca.pem")})),
        ];
        let extra = format!("{}connectors:\n{}", static_setup(), list.concat());
        let server =
            Server::start(Ports::new(), move |dir, ports| config(ports, &sqlite_storage(dir), &extra));
        (slapd, server)
    })
    .await
    .unwrap();
    let claims = id_claims(&login(&server, "mtls", "jane", JANE_PW).await);
    assert_eq!(claims["email"], "jane@example.org", "{claims}");
    assert_eq!(groups(&claims), sorted(JANE_GROUPS), "{claims}");
    // Without the certificate slapd ends the handshake: a login error, no bind.
    let binds = slapd.binds_as(JANE_DN);
    let page = failed_login(&server, "no-client-cert", "jane", JANE_PW).await;
    assert_eq!(page.status, 503, "{}", page.html);
    assert_eq!(slapd.binds_as(JANE_DN), binds);
}

#[tokio::test]
async fn a_refresh_while_the_directory_is_down_is_temporarily_unavailable_not_invalid_grant() {
    let Setup { mut slapd, server, .. } = setup().await;
    let response = login(&server, "ldap", "jane", JANE_PW).await;
    let refresh_token = response["refresh_token"].as_str().unwrap().to_owned();
    slapd.stop();
    // Unreachable is not "the user is gone": the client may retry, the grant is not refused.
    let (status, body) =
        token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")), "{body}");
    assert!(server.log_text().contains("cannot connect to ldaps://127.0.0.1"), "{}", server.log_text());
    // The failed refresh did not rotate the token: once the directory is back, the same refresh
    // token works (no reuse interval is configured, so a rotated secret would revoke the family).
    slapd.restart();
    let (status, body) =
        token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]).await;
    assert_eq!(status, 200, "{body}");
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh_token, "rotated once the upstream agreed");
    let (status, body) = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &next)]).await;
    assert_eq!(status, 200, "{body}");
}
