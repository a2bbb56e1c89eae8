//! From the upstream's claims to an [`Identity`], with Dex's keys: `userIDKey`, `userNameKey`,
//! `claimMapping` (+ `overrideClaimMapping`), `insecureSkipEmailVerified`, `hostedDomains`,
//! `insecureEnableGroups`, `allowedGroups` and `claimModifications`.
//!
//! The order is Dex's: upstream groups are read (a `filterGroupClaims` regex drops the ones that
//! do not match), `allowedGroups` keeps the intersection (and refuses the user when it is
//! empty), `modifyGroupNames` adds its prefix and suffix, and only then are the groups of
//! `newGroupFromClaims` appended (neither filtered nor renamed).

use regex::Regex;
use serde_json::{Map, Value};

use crate::connector::Identity;

/// One `claimModifications.newGroupFromClaims` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NewGroup {
    /// The claims whose (string) values are joined.
    pub claims: Vec<String>,
    /// Put between the prefix and each value.
    pub delimiter: String,
    /// Remove the delimiter from the values first, so that the result keeps its shape.
    pub clear_delimiter: bool,
    /// The first segment.
    pub prefix: String,
}

/// How claims become an identity.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimRules {
    /// `userIDKey`; empty means `sub`.
    pub user_id_key: String,
    /// `userNameKey`; empty means `name`.
    pub user_name_key: String,
    /// `overrideClaimMapping`: the mapped claim wins even when the standard one is present.
    pub override_mapping: bool,
    /// `claimMapping.preferred_username`.
    pub preferred_username_key: String,
    /// `claimMapping.email`.
    pub email_key: String,
    /// `claimMapping.groups`.
    pub groups_key: String,
    /// The `email` scope is requested upstream: the email and `email_verified` claims must be
    /// there.
    pub email_required: bool,
    /// `insecureSkipEmailVerified`: a missing `email_verified` counts as true.
    pub skip_email_verified: bool,
    /// `insecureEnableGroups`: the groups claim is trusted and passed on.
    pub enable_groups: bool,
    /// `allowedGroups`: the user must be in one of them.
    pub allowed_groups: Vec<String>,
    /// `claimModifications.filterGroupClaims.groupsFilter`.
    pub groups_filter: Option<Regex>,
    /// `claimModifications.modifyGroupNames.prefix`.
    pub group_prefix: String,
    /// `claimModifications.modifyGroupNames.suffix`.
    pub group_suffix: String,
    /// `claimModifications.newGroupFromClaims`.
    pub new_groups: Vec<NewGroup>,
    /// `hostedDomains`: the `hd` claim must be one of them.
    pub hosted_domains: Vec<String>,
}

/// A claim value as a string: strings as they are, numbers in decimal (numeric user ids).
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ClaimRules {
    /// A string claim with Dex's mapping rule: the standard claim, unless it is missing (or
    /// `overrideClaimMapping`) and a mapping is configured. Returns the value and the key read.
    fn mapped<'a>(
        &'a self,
        claims: &'a Map<String, Value>,
        standard: &'a str,
        mapping: &'a str,
    ) -> (Option<&'a str>, &'a str) {
        let value = claims.get(standard).and_then(Value::as_str);
        if (value.is_none() || self.override_mapping) && !mapping.is_empty() {
            return (claims.get(mapping).and_then(Value::as_str), mapping);
        }
        (value, standard)
    }

    /// The identity the claims describe, or why the user may not log in (a sentence without
    /// claim values).
    pub(crate) fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, String> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "the \"sub\" claim is missing".to_owned())?;

        let name_key = if self.user_name_key.is_empty() { "name" } else { self.user_name_key.as_str() };
        let username = match claims.get(name_key).and_then(Value::as_str) {
            Some(name) => name.to_owned(),
            // Dex refuses a login without `name`; Oxidex only refuses when the operator named
            // the key explicitly.
            None if !self.user_name_key.is_empty() => {
                return Err(format!("the {name_key:?} claim (userNameKey) is missing"));
            }
            None => String::new(),
        };

        let (preferred, _) = self.mapped(claims, "preferred_username", &self.preferred_username_key);
        let preferred_username = preferred.unwrap_or_default().to_owned();

        let (email, email_key) = self.mapped(claims, "email", &self.email_key);
        if email.is_none() && self.email_required {
            return Err(format!("the {email_key:?} claim (email) is missing"));
        }
        let email = email.unwrap_or_default().to_owned();
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            // Some providers (AWS Cognito) send the boolean as a string.
            Some(Value::String(s)) if s == "true" => true,
            Some(Value::String(s)) if s == "false" => false,
            _ if self.skip_email_verified => true,
            _ if self.email_required => return Err("the \"email_verified\" claim is missing".to_owned()),
            _ => false,
        };

        if !self.hosted_domains.is_empty() {
            let hd = claims.get("hd").and_then(Value::as_str).unwrap_or_default();
            if !self.hosted_domains.iter().any(|d| d == hd) {
                return Err("the user's hosted domain (\"hd\" claim) is not one of hostedDomains".to_owned());
            }
        }

        let mut groups = Vec::new();
        if self.enable_groups || !self.allowed_groups.is_empty() {
            let upstream = self.upstream_groups(claims)?;
            let upstream = if self.allowed_groups.is_empty() {
                upstream
            } else {
                let kept: Vec<String> =
                    upstream.into_iter().filter(|g| self.allowed_groups.contains(g)).collect();
                if kept.is_empty() {
                    return Err("the user is not a member of any of allowedGroups".to_owned());
                }
                kept
            };
            // Without insecureEnableGroups the groups are checked (allowedGroups) but not passed on.
            if self.enable_groups {
                groups = upstream
                    .into_iter()
                    .map(|g| format!("{}{g}{}", self.group_prefix, self.group_suffix))
                    .collect();
            }
        }
        for rule in &self.new_groups {
            let mut segments = vec![rule.prefix.clone()];
            for name in &rule.claims {
                // Only string claims are joined, as in Dex.
                let Some(value) = claims.get(name).and_then(Value::as_str) else { continue };
                let value = if rule.clear_delimiter && !rule.delimiter.is_empty() {
                    value.replace(&rule.delimiter, "")
                } else {
                    value.to_owned()
                };
                segments.push(value);
            }
            if segments.len() > 1 {
                groups.push(segments.join(&rule.delimiter));
            }
        }

        let user_id = if self.user_id_key.is_empty() {
            subject.to_owned()
        } else {
            claims
                .get(&self.user_id_key)
                .and_then(id_string)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the {:?} claim (userIDKey) is missing", self.user_id_key))?
        };

        Ok(Identity {
            user_id,
            username,
            preferred_username,
            email,
            email_verified,
            groups,
            connector_data: Vec::new(),
        })
    }

    /// The groups claim (`groups`, or `claimMapping.groups` by the mapping rule), a list of
    /// strings or a single string, filtered by `groupsFilter`.
    fn upstream_groups(&self, claims: &Map<String, Value>) -> Result<Vec<String>, String> {
        let mut key = "groups";
        let mut list = claims.get(key).and_then(Value::as_array);
        if (list.is_none() || self.override_mapping) && !self.groups_key.is_empty() {
            key = self.groups_key.as_str();
            list = claims.get(key).and_then(Value::as_array);
        }
        let mut names: Vec<&str> = Vec::new();
        if let Some(single) = claims.get(key).and_then(Value::as_str) {
            names.push(single);
        }
        for item in list.into_iter().flatten() {
            let Some(name) = item.as_str() else {
                return Err(format!("the {key:?} claim (groups) is not a list of strings"));
            };
            names.push(name);
        }
        Ok(names
            .into_iter()
            .filter(|g| self.groups_filter.as_ref().is_none_or(|re| re.is_match(g)))
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn base() -> Map<String, Value> {
        claims(json!({
            "sub": "u-1", "name": "Jane Doe", "email": "jane@example.com", "email_verified": true,
            "groups": ["admins", "dev", "ops"], "handle": "jd", "mail": "jd@corp.example",
            "department": "R&D", "org": "acme", "employee": 4711, "roles": "single",
        }))
    }

    fn rules() -> ClaimRules {
        ClaimRules { email_required: true, ..Default::default() }
    }

    #[test]
    fn standard_claims_by_default_and_no_groups_unless_enabled() {
        let id = rules().identity(&base()).unwrap();
        assert_eq!(id.user_id, "u-1");
        assert_eq!(id.username, "Jane Doe");
        assert_eq!(id.preferred_username, "");
        assert_eq!(id.email, "jane@example.com");
        assert!(id.email_verified);
        assert!(id.groups.is_empty());
    }

    #[test]
    fn user_id_and_user_name_keys() {
        let r = ClaimRules { user_id_key: "employee".into(), user_name_key: "handle".into(), ..rules() };
        let id = r.identity(&base()).unwrap();
        assert_eq!((id.user_id.as_str(), id.username.as_str()), ("4711", "jd"));
        let r = ClaimRules { user_id_key: "nope".into(), ..rules() };
        assert_eq!(r.identity(&base()).unwrap_err(), "the \"nope\" claim (userIDKey) is missing");
        let r = ClaimRules { user_name_key: "nope".into(), ..rules() };
        assert!(r.identity(&base()).unwrap_err().contains("userNameKey"));
        // The default `name` may be missing.
        let mut c = base();
        c.remove("name");
        assert_eq!(rules().identity(&c).unwrap().username, "");
        c.remove("sub");
        assert_eq!(rules().identity(&c).unwrap_err(), "the \"sub\" claim is missing");
    }

    #[test]
    fn claim_mapping_applies_when_the_standard_claim_is_missing_or_overridden() {
        let r = ClaimRules { preferred_username_key: "handle".into(), email_key: "mail".into(), ..rules() };
        let id = r.identity(&base()).unwrap();
        assert_eq!(id.preferred_username, "jd");
        assert_eq!(id.email, "jane@example.com", "email is present, so the mapping is not used");
        let r = ClaimRules { override_mapping: true, ..r };
        assert_eq!(r.identity(&base()).unwrap().email, "jd@corp.example");
        let mut c = base();
        c.insert("preferred_username".into(), json!("jane"));
        let r = ClaimRules { preferred_username_key: "handle".into(), ..rules() };
        assert_eq!(r.identity(&c).unwrap().preferred_username, "jane");
    }

    #[test]
    fn email_and_email_verified_rules() {
        let mut c = base();
        c.remove("email_verified");
        assert_eq!(rules().identity(&c).unwrap_err(), "the \"email_verified\" claim is missing");
        let skip = ClaimRules { skip_email_verified: true, ..rules() };
        assert!(skip.identity(&c).unwrap().email_verified);
        // A false value stays false, even with insecureSkipEmailVerified.
        c.insert("email_verified".into(), json!(false));
        assert!(!skip.identity(&c).unwrap().email_verified);
        c.insert("email_verified".into(), json!("true"));
        assert!(rules().identity(&c).unwrap().email_verified);
        c.remove("email");
        assert_eq!(rules().identity(&c).unwrap_err(), "the \"email\" claim (email) is missing");
        // Without the email scope neither is required.
        let lax = ClaimRules { email_required: false, ..Default::default() };
        c.remove("email_verified");
        let id = lax.identity(&c).unwrap();
        assert!(id.email.is_empty() && !id.email_verified);
    }

    #[test]
    fn hosted_domains_check_hd() {
        let r = ClaimRules { hosted_domains: vec!["example.com".into()], ..rules() };
        assert!(r.identity(&base()).unwrap_err().contains("hostedDomains"));
        let mut c = base();
        c.insert("hd".into(), json!("example.com"));
        assert!(r.identity(&c).is_ok());
        c.insert("hd".into(), json!("evil.example"));
        assert!(r.identity(&c).is_err());
    }

    #[test]
    fn groups_filter_allowed_groups_then_names_then_new_groups() {
        let r = ClaimRules {
            enable_groups: true,
            allowed_groups: vec!["dev".into(), "ops".into(), "absent".into()],
            groups_filter: Some(Regex::new("^(dev|admins)$").unwrap()),
            group_prefix: "up:".into(),
            group_suffix: "!".into(),
            new_groups: vec![
                NewGroup {
                    claims: vec!["org".into(), "department".into(), "employee".into()],
                    delimiter: "&".into(),
                    clear_delimiter: true,
                    prefix: "org".into(),
                },
                NewGroup { claims: vec!["missing".into()], delimiter: ":".into(), ..Default::default() },
            ],
            ..rules()
        };
        // ops is filtered out by the regex, admins by allowedGroups; the numeric claim is skipped.
        assert_eq!(r.identity(&base()).unwrap().groups, vec!["up:dev!", "org&acme&RD"]);
        let none_allowed = ClaimRules { allowed_groups: vec!["absent".into()], ..r.clone() };
        assert_eq!(
            none_allowed.identity(&base()).unwrap_err(),
            "the user is not a member of any of allowedGroups"
        );
    }

    #[test]
    fn groups_need_insecure_enable_groups_but_allowed_groups_is_always_enforced() {
        let r = ClaimRules { allowed_groups: vec!["dev".into()], ..rules() };
        assert!(r.identity(&base()).unwrap().groups.is_empty());
        let r = ClaimRules { allowed_groups: vec!["nobody".into()], ..rules() };
        assert!(r.identity(&base()).is_err());
    }

    #[test]
    fn groups_claim_mapping_string_fallback_and_malformed_lists() {
        let r = ClaimRules { enable_groups: true, groups_key: "roles".into(), ..rules() };
        assert_eq!(r.identity(&base()).unwrap().groups, vec!["admins", "dev", "ops"]);
        let r = ClaimRules { override_mapping: true, ..r };
        assert_eq!(r.identity(&base()).unwrap().groups, vec!["single"]);
        let mut c = base();
        c.insert("groups".into(), json!(["ok", 3]));
        let r = ClaimRules { enable_groups: true, ..rules() };
        assert_eq!(r.identity(&c).unwrap_err(), "the \"groups\" claim (groups) is not a list of strings");
    }
}
