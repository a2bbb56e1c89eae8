//! The loader's entry points: read, parse, validate, sort findings into errors and warnings.

use std::path::Path;

use serde_yaml_ng::Value;

use super::raw::Ctx;
use super::validate::validate;
use super::{Config, ConfigErrors, Problem};

/// How to load a config file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Unknown keys are errors instead of warnings. Also switched on by a top-level
    /// `strictConfig: true` or by `DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=true`.
    pub strict: bool,
    /// Command-line overrides applied before validation (Dex's `serve` flags).
    pub overrides: Overrides,
}

/// Listen addresses given on the command line; they replace the file's values before the file is
/// validated (so a file without `web.http` is fine when `--web-http-addr` is given), as in Dex.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--web-http-addr`.
    pub web_http: Option<String>,
    /// `--web-https-addr`.
    pub web_https: Option<String>,
    /// `--telemetry-addr`.
    pub telemetry_http: Option<String>,
    /// `--grpc-addr`.
    pub grpc_addr: Option<String>,
}

/// A valid configuration and the warnings found on the way (deprecated or unknown keys, ...).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Findings that do not stop the server; log them.
    pub warnings: Vec<Problem>,
}

/// Reads and validates the config file at `path`, reading environment variables from the process.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigErrors(vec![Problem {
            path: String::new(),
            message: format!("cannot read the config file {}: {e}", path.display()),
        }])
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigErrors(vec![Problem {
            path: String::new(),
            message: format!(
                "the config file {} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        }])
    })?;
    let env = |name: &str| std::env::var(name).ok();
    parse_str(&text, &env, opts)
}

/// Parses and validates a config file's text. `env` looks environment variables up (injected so
/// that tests need not touch the process environment).
pub fn parse_str(
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
    opts: &LoadOptions,
) -> Result<Loaded, ConfigErrors> {
    let mut root: Value = match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => {
            return Err(ConfigErrors(vec![Problem {
                path: String::new(),
                message: format!("not valid YAML: {e}"),
            }]));
        }
    };
    if let Err(e) = root.apply_merge() {
        return Err(ConfigErrors(vec![Problem {
            path: String::new(),
            message: format!("invalid YAML merge key (<<): {e}"),
        }]));
    }
    let mut ctx = Ctx::new(env);
    let validated = validate(&mut ctx, &root, &opts.overrides);
    let strict = opts.strict || validated.strict || ctx.flag("DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS", false);
    let Ctx { mut errors, mut warnings, unknown, .. } = ctx;
    if strict {
        errors.extend(
            unknown
                .into_iter()
                .map(|p| Problem { message: format!("{} (strict mode: remove or fix it)", p.message), ..p }),
        );
    } else {
        warnings.extend(unknown);
    }
    dedup(&mut errors);
    dedup(&mut warnings);
    match validated.config {
        Some(config) if errors.is_empty() => Ok(Loaded { config, warnings }),
        _ => {
            if errors.is_empty() {
                errors.push(Problem { path: String::new(), message: "the configuration is unusable".into() });
            }
            Err(ConfigErrors(errors))
        }
    }
}

/// Drops exact repeats, keeping the order in which the sections were checked.
fn dedup(problems: &mut Vec<Problem>) {
    let mut seen = std::collections::BTreeSet::new();
    problems.retain(|p| seen.insert((p.path.clone(), p.message.clone())));
}
