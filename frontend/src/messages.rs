//! The message catalogs: every string a login page shows, in English and German.
//!
//! A message is a [`Msg`]; [`Msg::text`] gives its text in a [`Locale`], [`Msg::fill`] replaces
//! its `{name}` placeholders. Both the gateway (the no-JS pages, `<html lang>`) and the browser
//! app use these, so the two never disagree. Core's `ErrorPage.code` and scope names map to
//! messages with [`error_text`] and [`scope_text`]; anything unknown falls back to the English
//! text core sent.

/// A language with a catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    /// English (the fallback of every lookup).
    #[default]
    En,
    /// German.
    De,
}

impl Locale {
    /// Every locale with a catalog.
    pub const ALL: &'static [Locale] = &[Locale::En, Locale::De];

    /// The BCP 47 tag (`<html lang>`, `frontend.defaultLocale`).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
        }
    }

    /// The locale of a language tag (`de`, `de-AT`, `EN_us`...), by its primary subtag.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        Locale::ALL.iter().copied().find(|l| l.tag().eq_ignore_ascii_case(primary))
    }

    /// Picks the page's locale: the first supported tag of `ui_locales` (OpenID Connect Core
    /// §3.1.2.1: space-separated, in order of preference), else the best supported language of
    /// the `Accept-Language` header (RFC 9110 §12.5.4, by quality, `*` and `q=0` ignored), else
    /// `default`.
    pub fn negotiate(ui_locales: &str, accept_language: &str, default: Locale) -> Locale {
        if let Some(l) = ui_locales.split_whitespace().find_map(Locale::from_tag) {
            return l;
        }
        let mut best: Option<(u16, Locale)> = None;
        for item in accept_language.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let mut q = 1000u16;
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")) {
                    q = parse_quality(v).unwrap_or(0);
                }
            }
            if q == 0 {
                continue;
            }
            if let Some(l) = Locale::from_tag(tag)
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, l));
            }
        }
        best.map_or(default, |(_, l)| l)
    }
}

/// An RFC 9110 qvalue as thousandths (`0.8` -> 800); `None` when malformed.
fn parse_quality(v: &str) -> Option<u16> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = int * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

macro_rules! catalog {
    ($($(#[$doc:meta])* $key:ident => $en:literal, $de:literal;)*) => {
        /// A message of the catalogs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Msg {
            $($(#[$doc])* $key,)*
        }

        impl Msg {
            /// Every message.
            pub const ALL: &'static [Msg] = &[$(Msg::$key,)*];

            /// The message's text in `locale`, placeholders unreplaced.
            pub fn text(self, locale: Locale) -> &'static str {
                match (self, locale) {
                    $((Msg::$key, Locale::En) => $en, (Msg::$key, Locale::De) => $de,)*
                }
            }
        }
    };
}

catalog! {
    LogIn => "Log in", "Anmelden";
    ChooseMethod => "Choose how to log in.", "Wählen Sie, wie Sie sich anmelden möchten.";
    /// `{client}`: the application's name.
    LogInToContinue => "Log in to continue to {client}.", "Melden Sie sich an, um mit {client} fortzufahren.";
    /// `{name}`: the connector's name.
    LogInWith => "Log in with {name}", "Mit {name} anmelden";
    Username => "Username", "Benutzername";
    EmailAddress => "Email Address", "E-Mail-Adresse";
    Password => "Password", "Passwort";
    InvalidCredentials => "Invalid username or password.", "Benutzername oder Passwort ist falsch.";
    /// `{seconds}`: how long to wait.
    Throttled => "Too many attempts. Please try again in {seconds} s.",
        "Zu viele Versuche. Bitte versuchen Sie es in {seconds} s erneut.";
    ThrottleOver => "You can try again now.", "Sie können es jetzt erneut versuchen.";
    OtherMethod => "Choose another login method", "Andere Anmeldemethode wählen";
    GrantAccessTitle => "Grant access", "Zugriff erlauben";
    /// `{user}`: the logged-in user.
    LoggedInAs => "Logged in as {user}.", "Angemeldet als {user}.";
    /// `{client}`: the application's name.
    WouldLikeTo => "{client} would like to:", "{client} möchte:";
    Approve => "Grant access", "Zugriff erlauben";
    Deny => "Cancel", "Abbrechen";
    ScopeEmail => "View your email address", "Ihre E-Mail-Adresse sehen";
    ScopeProfile => "View basic profile information", "Grundlegende Profilinformationen sehen";
    ScopeGroups => "View your groups", "Ihre Gruppen sehen";
    ScopeOfflineAccess => "Have offline access (stay signed in)", "Offline-Zugriff erhalten (angemeldet bleiben)";
    ScopeFederatedId => "View the account you signed in with upstream",
        "Das Konto sehen, mit dem Sie sich beim Anbieter angemeldet haben";
    /// `{client}`: the other application's id.
    ScopeAudience => "Get access tokens for the application \"{client}\"",
        "Zugriffstoken für die Anwendung „{client}“ erhalten";
    LoginSuccessful => "Login successful", "Anmeldung erfolgreich";
    OobIntro => "Copy this code and paste it into your application:",
        "Kopieren Sie diesen Code und fügen Sie ihn in Ihre Anwendung ein:";
    OobLabel => "Login code", "Anmeldecode";
    Copy => "Copy", "Kopieren";
    Copied => "Copied.", "Kopiert.";
    /// `{client}`: the application's name.
    DeviceDoneClient => "You are logged in to {client}. Return to your device to continue.",
        "Sie sind bei {client} angemeldet. Kehren Sie zu Ihrem Gerät zurück, um fortzufahren.";
    DeviceDone => "You are logged in. Return to your device to continue.",
        "Sie sind angemeldet. Kehren Sie zu Ihrem Gerät zurück, um fortzufahren.";
    DeviceTitle => "Enter the code", "Code eingeben";
    DeviceIntro => "Enter the code shown on your device.",
        "Geben Sie den Code ein, der auf Ihrem Gerät angezeigt wird.";
    DeviceLabel => "Code", "Code";
    DeviceInvalid => "Invalid or expired code. Please try again.",
        "Ungültiger oder abgelaufener Code. Bitte versuchen Sie es erneut.";
    Continue => "Continue", "Weiter";
    ErrorTitle => "Error", "Fehler";
    InternalTitle => "Internal error", "Interner Fehler";
    InternalMessage => "Please try again later.", "Bitte versuchen Sie es später erneut.";
    UnavailableTitle => "Temporarily unavailable", "Vorübergehend nicht verfügbar";
    UnavailableMessage => "The login service is busy or being restarted. Please try again in a moment.",
        "Der Anmeldedienst ist ausgelastet oder wird neu gestartet. Bitte versuchen Sie es gleich noch einmal.";
    BadRequestTitle => "The request could not be completed", "Die Anfrage konnte nicht ausgeführt werden";
    StaleTitle => "Login session expired", "Anmeldesitzung abgelaufen";
    StaleMessage => "This login request is unknown, has expired, or was started in another browser. Go back to the application and sign in again.",
        "Diese Anmeldeanfrage ist unbekannt, abgelaufen oder wurde in einem anderen Browser begonnen. Kehren Sie zur Anwendung zurück und melden Sie sich erneut an.";
    InvalidRequestTitle => "Invalid request", "Ungültige Anfrage";
    MissingClientMessage => "The request has no client_id.", "Die Anfrage enthält keine client_id.";
    UnknownClientTitle => "Unknown application", "Unbekannte Anwendung";
    UnknownClientMessage => "No application is registered with this client_id.",
        "Unter dieser client_id ist keine Anwendung registriert.";
    InvalidRedirectTitle => "Invalid redirect URI", "Ungültige Weiterleitungsadresse";
    InvalidRedirectMessage => "The redirect_uri is not registered for this application.",
        "Die redirect_uri ist für diese Anwendung nicht registriert.";
    CookiesTitle => "Cookies required", "Cookies erforderlich";
    CookiesMessage => "Enable cookies for this site and try again.",
        "Aktivieren Sie Cookies für diese Seite und versuchen Sie es erneut.";
    AuthorizationFailedTitle => "Authorization failed", "Autorisierung fehlgeschlagen";
    NoConnectorsTitle => "No way to log in", "Keine Anmeldemöglichkeit";
    NoConnectorsMessage => "No login method is configured for this application. Contact the administrator.",
        "Für diese Anwendung ist keine Anmeldemethode eingerichtet. Wenden Sie sich an die Administration.";
    ConnectorNotAllowedTitle => "Login method not allowed", "Anmeldemethode nicht erlaubt";
    ConnectorNotAllowedMessage => "This application does not allow this login method.",
        "Diese Anwendung erlaubt diese Anmeldemethode nicht.";
    UnknownConnectorTitle => "Unknown login method", "Unbekannte Anmeldemethode";
    UnknownConnectorMessage => "This login method does not exist.", "Diese Anmeldemethode gibt es nicht.";
    ConnectorUnavailableTitle => "Login method unavailable", "Anmeldemethode nicht verfügbar";
    ConnectorUnavailableMessage => "This login method cannot be used in a browser.",
        "Diese Anmeldemethode kann nicht im Browser verwendet werden.";
    NotPasswordTitle => "Not a password login", "Keine Passwort-Anmeldung";
    NotPasswordMessage => "This login method does not take a password.",
        "Diese Anmeldemethode verwendet kein Passwort.";
    UpstreamFailedTitle => "Login failed", "Anmeldung fehlgeschlagen";
    UpstreamFailedMessage => "The login provider did not confirm your identity. Try again.",
        "Der Anmeldeanbieter hat Ihre Identität nicht bestätigt. Versuchen Sie es erneut.";
    DeviceClientGoneMessage => "The application of this code no longer exists.",
        "Die Anwendung dieses Codes gibt es nicht mehr.";
    DeviceExpiredTitle => "Device code expired", "Gerätecode abgelaufen";
    DeviceExpiredMessage => "The code shown on your device has expired. Start again on the device.",
        "Der auf Ihrem Gerät angezeigte Code ist abgelaufen. Beginnen Sie auf dem Gerät von vorn.";
    AccessDeniedTitle => "Access denied", "Zugriff verweigert";
    DeviceDeniedMessage => "You denied the device access. You can close this window.",
        "Sie haben dem Gerät den Zugriff verweigert. Sie können dieses Fenster schließen.";
}

impl Msg {
    /// The text in `locale` with every `{name}` placeholder replaced by its value.
    pub fn fill(self, locale: Locale, args: &[(&str, &str)]) -> String {
        let mut out = self.text(locale).to_owned();
        for (name, value) in args {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }
}

/// The translated title and message of an error page by its `ErrorPage.code`. The message is
/// `None` when core's message carries details that have no translation (an OAuth error's
/// description for an out-of-band client): show core's message then.
pub fn error_text(code: &str) -> Option<(Msg, Option<Msg>)> {
    use Msg::*;
    Some(match code {
        "stale_request" => (StaleTitle, Some(StaleMessage)),
        "missing_client_id" => (InvalidRequestTitle, Some(MissingClientMessage)),
        "unknown_client" => (UnknownClientTitle, Some(UnknownClientMessage)),
        "invalid_redirect_uri" => (InvalidRedirectTitle, Some(InvalidRedirectMessage)),
        "cookies_required" => (CookiesTitle, Some(CookiesMessage)),
        "authorization_failed" => (AuthorizationFailedTitle, None),
        "no_connectors" => (NoConnectorsTitle, Some(NoConnectorsMessage)),
        "connector_not_allowed" => (ConnectorNotAllowedTitle, Some(ConnectorNotAllowedMessage)),
        "unknown_connector" => (UnknownConnectorTitle, Some(UnknownConnectorMessage)),
        "connector_unavailable" => (ConnectorUnavailableTitle, Some(ConnectorUnavailableMessage)),
        "not_password_connector" => (NotPasswordTitle, Some(NotPasswordMessage)),
        "upstream_login_failed" => (UpstreamFailedTitle, Some(UpstreamFailedMessage)),
        // The upstream's reason (not in an allowed org, team, group...) has no translation.
        "upstream_refused" => (AccessDeniedTitle, None),
        "device_client_gone" => (UnknownClientTitle, Some(DeviceClientGoneMessage)),
        "device_code_expired" => (DeviceExpiredTitle, Some(DeviceExpiredMessage)),
        "device_denied" => (AccessDeniedTitle, Some(DeviceDeniedMessage)),
        "internal" => (InternalTitle, Some(InternalMessage)),
        "unavailable" => (UnavailableTitle, Some(UnavailableMessage)),
        // A request the gateway or core could not accept; the detail is core's (English).
        "bad_request" => (BadRequestTitle, None),
        _ => return None,
    })
}

/// The explanation of a scope in `locale`, or `None` for a scope with nothing to explain
/// (`openid`) or unknown to the catalogs (then core's `ScopeInfo.description` is shown).
pub fn scope_text(scope: &str, locale: Locale) -> Option<String> {
    let msg = match scope {
        "email" => Msg::ScopeEmail,
        "profile" => Msg::ScopeProfile,
        "groups" => Msg::ScopeGroups,
        "offline_access" => Msg::ScopeOfflineAccess,
        "federated:id" => Msg::ScopeFederatedId,
        other => {
            let peer = other.strip_prefix("audience:server:client_id:")?;
            return Some(Msg::ScopeAudience.fill(locale, &[("client", peer)]));
        }
    };
    Some(msg.text(locale).to_owned())
}

/// The label of the username input: the connector's prompt, translated when it is one of the
/// built-in prompts (Dex's `Username` and `Email Address`), else as the operator configured it.
pub fn username_prompt(prompt: &str, locale: Locale) -> String {
    match prompt.trim() {
        "" | "Username" => Msg::Username.text(locale).to_owned(),
        "Email Address" | "Email address" | "Email" => Msg::EmailAddress.text(locale).to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(s: &str) -> Vec<&str> {
        let mut out: Vec<&str> = s.split('{').skip(1).filter_map(|p| p.split('}').next()).collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn every_message_is_translated_with_the_same_placeholders() {
        for m in Msg::ALL {
            let en = m.text(Locale::En);
            let de = m.text(Locale::De);
            assert!(!en.is_empty() && !de.is_empty(), "{m:?}");
            assert_eq!(placeholders(en), placeholders(de), "{m:?}");
        }
    }

    #[test]
    fn every_error_code_core_sends_has_text() {
        for code in [
            "stale_request",
            "missing_client_id",
            "unknown_client",
            "invalid_redirect_uri",
            "cookies_required",
            "authorization_failed",
            "no_connectors",
            "connector_not_allowed",
            "unknown_connector",
            "connector_unavailable",
            "not_password_connector",
            "upstream_login_failed",
            "upstream_refused",
            "device_client_gone",
            "device_code_expired",
            "device_denied",
        ] {
            assert!(error_text(code).is_some(), "{code}");
        }
        assert!(error_text("something_new").is_none());
    }

    #[test]
    fn ui_locales_win_then_accept_language_then_the_default() {
        assert_eq!(Locale::negotiate("fr de-CH", "en", Locale::En), Locale::De);
        assert_eq!(Locale::negotiate("fr", "fr;q=1, de;q=0.5, en;q=0.4", Locale::En), Locale::De);
        assert_eq!(Locale::negotiate("", "en-US,en;q=0.9,de;q=0.8", Locale::De), Locale::En);
        assert_eq!(Locale::negotiate("", "de;q=0, *", Locale::En), Locale::En);
        assert_eq!(Locale::negotiate("", "fr", Locale::De), Locale::De);
        assert_eq!(Locale::negotiate("", "de;q=bogus, en;q=0.1", Locale::De), Locale::En);
        assert_eq!(Locale::negotiate("", "", Locale::De), Locale::De);
    }

    #[test]
    fn fill_replaces_placeholders() {
        assert_eq!(
            Msg::LogInToContinue.fill(Locale::De, &[("client", "App")]),
            "Melden Sie sich an, um mit App fortzufahren."
        );
        assert_eq!(
            scope_text("audience:server:client_id:x", Locale::En).as_deref(),
            Some("Get access tokens for the application \"x\"")
        );
        assert_eq!(scope_text("openid", Locale::En), None);
        assert_eq!(username_prompt("Email Address", Locale::De), "E-Mail-Adresse");
        assert_eq!(username_prompt("Employee ID", Locale::De), "Employee ID");
    }
}
