//! Compiling the alerting part of the config: `[state]`, `[alerting]`, `[[notifier]]`,
//! `[[hook]]`, and a rule's `notify` and `hooks`, into [`StateConfig`] and
//! [`AlertingConfig`]. `compile/mod.rs` drives; this file adds to its [`Compiler`].
//!
//! Like the rest of compiling it reads only through [`Host`](super::compile::Host) (the
//! environment, `*_file` secrets, CA files, the host name), collects every problem at its
//! most precise span, and names fields, never secret values. A notifier that passes these
//! checks is also put through [`notifier::check`] (pure: no client is built, no file read),
//! so that what only its settings as a whole tell (a template, an address, credentials
//! without TLS) is reported at check-config time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::compile::{
    is_http_url, unknown_name_message, Compiler, Defined, KindKeys, Span, MAX_OUTPUT_BYTES,
};
use super::hook::{HookCommand, HookConfig};
use super::model::*;
use super::notifier::{
    self, AlertmanagerConfig, EmailConfig, EmailTls, NotifierConfig, NotifierKind, PagerDutyConfig,
    SlackConfig, Template, WebhookConfig, WebhookFormat, DEFAULT_RESEND_EVERY, DEFAULT_TIMEOUT,
    PAGERDUTY_EVENTS_URL,
};
use super::raw::*;
use crate::alert::Severity;
use crate::secret::Secret;

/// Where PagerDuty's default `source` comes from.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Type {
    Webhook,
    Slack,
    PagerDuty,
    Alertmanager,
    Email,
}

const TYPES: [(&str, Type); 5] = [
    ("webhook", Type::Webhook),
    ("slack", Type::Slack),
    ("pagerduty", Type::PagerDuty),
    ("alertmanager", Type::Alertmanager),
    ("email", Type::Email),
];

impl Type {
    fn name(self) -> &'static str {
        TYPES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(name, _)| name)
    }
}

/// The notifier kinds that use a `[[notifier]]` key; `None` for keys every kind has.
fn types_using(key: &str) -> Option<&'static [Type]> {
    use Type::*;
    match key {
        "url" => Some(&[Webhook, PagerDuty, Alertmanager]),
        "url_file" | "headers" | "format" | "template" | "external_url" => Some(&[Webhook]),
        "webhook_url" | "webhook_url_file" | "channel" => Some(&[Slack]),
        "username" => Some(&[Slack, Email]),
        "routing_key" | "routing_key_file" | "source" | "component" | "group" | "class" => {
            Some(&[PagerDuty])
        }
        "resend_every" | "generator_url" => Some(&[Alertmanager]),
        "smtp"
        | "tls"
        | "password"
        | "password_file"
        | "from"
        | "to"
        | "ca_file"
        | "accept_invalid_certs" => Some(&[Email]),
        _ => None,
    }
}

const NOTIFIER_KEYS: KindKeys<Type> = KindKeys {
    plural: "notifiers",
    all: RawNotifier::KEYS,
    takes: type_takes,
};

/// Whether a `[[notifier]]` of `ty` takes `key`.
fn type_takes(ty: Type, key: &str) -> bool {
    types_using(key).is_none_or(|types| types.contains(&ty))
}

/// Every `[[notifier]]` and `[[hook]]` of every file, and the names rules may use.
pub(super) struct Catalog {
    notifiers: Vec<NotifierConfig>,
    hooks: Vec<HookSpec>,
    /// Every notifier name defined (valid or not), in definition order.
    notifier_names: Vec<String>,
    hook_names: Vec<String>,
    /// Every file parsed: a name not defined is really unknown.
    complete: bool,
}

impl Catalog {
    pub(super) fn hook_names(&self) -> &[String] {
        &self.hook_names
    }

    pub(super) fn notifier_names(&self) -> &[String] {
        &self.notifier_names
    }

    pub(super) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether notifier `name` opens incidents at its receiver (PagerDuty, Alertmanager).
    pub(super) fn notifier_pages(&self, name: &str) -> bool {
        self.notifiers.iter().any(|n| {
            n.name == name
                && matches!(
                    n.kind,
                    NotifierKind::PagerDuty(_) | NotifierKind::Alertmanager(_)
                )
        })
    }

    /// Whether notifier `name` is an Alertmanager (which groups alerts itself).
    pub(super) fn notifier_is_alertmanager(&self, name: &str) -> bool {
        self.notifiers
            .iter()
            .any(|n| n.name == name && matches!(n.kind, NotifierKind::Alertmanager(_)))
    }

    /// The alerting model, once every rule's actions are known.
    pub(super) fn into_config(
        self,
        dry_run: bool,
        route: Route,
        rules: BTreeMap<String, RuleActions>,
    ) -> AlertingConfig {
        AlertingConfig {
            notifiers: self.notifiers,
            hooks: self.hooks,
            dry_run,
            instance: None,
            route,
            rules,
            dependencies: BTreeMap::new(),
            policies: BTreeMap::new(),
            rule_policies: BTreeMap::new(),
            severity_policies: Default::default(),
            routes: Vec::new(),
            external_url: None,
            ack_link_ttl: DEFAULT_ACK_LINK_TTL,
            maintenance: Vec::new(),
            inhibit: Vec::new(),
        }
    }
}

/// How long an acknowledgement link works unless `ack_link_ttl` says.
pub const DEFAULT_ACK_LINK_TTL: Duration = Duration::from_secs(24 * 3600);

/// `[alerting]`: the global hook dry-run and the default route.
pub(super) struct Settings {
    pub dry_run: bool,
    pub instance: Option<String>,
    pub route: Route,
    pub external_url: Option<String>,
    pub ack_link_ttl: Duration,
}

impl Compiler<'_> {
    /// `[state]` of the main file (`self.file` is the main file).
    pub(super) fn state(&mut self, raw: Option<&Spanned<RawState>>) -> Option<StateConfig> {
        let Some(raw) = raw else {
            return Some(self.default_state());
        };
        let before = self.problems.len();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [state]", RawState::KEYS);
        let path = match &r.path {
            None => return Some(self.default_state()).filter(|_| self.problems.len() == before),
            // `path = "${NUVIE_STATE_PATH:-}"`: unset in the environment means the default.
            Some(v) if !v.get_ref().is_empty() && self.text(v).is_some_and(|t| t.is_empty()) => {
                return Some(self.default_state()).filter(|_| self.problems.len() == before);
            }
            Some(v) => self.text(v).and_then(|text| {
                if text.is_empty() || text.ends_with('/') || text.contains('\0') {
                    self.error(
                        v.span(),
                        r#"state path must name a file, e.g. "/var/lib/warden/warden.db""#,
                    );
                    None
                } else {
                    Some(self.dir().join(text))
                }
            }),
        };
        let path = path?;
        (self.problems.len() == before).then_some(StateConfig { path, legacy: None })
    }

    /// The default state file, and where releases before it was named after the config kept
    /// it (`warden.db` in the same directory), when that is another file.
    fn default_state(&self) -> StateConfig {
        let path = self.default_state_path();
        let old_name = if path.to_string_lossy().ends_with("-state.db") {
            "warden-state.db"
        } else {
            "warden.db"
        };
        let legacy = path
            .parent()
            .map(|d| d.join(old_name))
            .filter(|l| *l != path);
        StateConfig { path, legacy }
    }

    /// See [`StateConfig::path`]. Empty and relative directories in the environment are
    /// ignored (the XDG rule), so a stray `HOME=.` never puts the state somewhere surprising.
    /// The file is named after the main config file (`nuvie.toml` keeps `nuvie.db`), so two
    /// configs run side by side without sharing (and locking) one store.
    fn default_state_path(&self) -> PathBuf {
        let file = format!("{}.db", self.instance_name());
        let dir = |name: &str| {
            (self.host.env)(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let state_directory = (self.host.env)("STATE_DIRECTORY")
            .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
            .filter(|p| p.is_absolute());
        if let Some(d) = state_directory {
            d.join(file)
        } else if let Some(d) = dir("XDG_STATE_HOME") {
            d.join("warden").join(file)
        } else if let Some(d) = dir("HOME") {
            d.join(".local/state/warden").join(file)
        } else {
            self.dir()
                .join(format!("{}-state.db", self.instance_name()))
        }
    }

    /// The main config file's name without its extension (`warden` for `warden.toml`), or
    /// `warden` when that is not a plain name.
    fn instance_name(&self) -> String {
        self.files[0]
            .source
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty() && !s.starts_with('.'))
            .unwrap_or("warden")
            .to_string()
    }

    /// Every `[[notifier]]`, then every `[[hook]]` (hooks name notifiers), of every file.
    pub(super) fn catalog(&mut self, complete: bool) -> Catalog {
        let mut catalog = Catalog {
            notifiers: Vec::new(),
            hooks: Vec::new(),
            notifier_names: Vec::new(),
            hook_names: Vec::new(),
            complete,
        };
        let mut defined: BTreeMap<String, Defined> = BTreeMap::new();
        for (index, unit) in self.files.iter().enumerate() {
            let Some(raw) = &unit.raw else { continue };
            self.file = index;
            for raw_notifier in raw.notifier.iter().flatten() {
                let (name, config) = self.notifier(raw_notifier);
                let Some(name) = name else { continue };
                if self.duplicate("notifier", &name, &defined) {
                    continue;
                }
                let at = Defined {
                    file: index,
                    offset: name.span().start,
                };
                defined.insert(name.get_ref().clone(), at);
                catalog.notifier_names.push(name.into_inner());
                catalog.notifiers.extend(config);
            }
        }
        let mut defined: BTreeMap<String, Defined> = BTreeMap::new();
        for (index, unit) in self.files.iter().enumerate() {
            let Some(raw) = &unit.raw else { continue };
            self.file = index;
            for raw_hook in raw.hook.iter().flatten() {
                let (name, spec) = self.hook(raw_hook, &catalog);
                let Some(name) = name else { continue };
                if self.duplicate("hook", &name, &defined) {
                    continue;
                }
                let at = Defined {
                    file: index,
                    offset: name.span().start,
                };
                defined.insert(name.get_ref().clone(), at);
                catalog.hook_names.push(name.into_inner());
                catalog.hooks.extend(spec);
            }
        }
        catalog
    }

    /// Reports a name defined before; true when it was.
    fn duplicate(
        &mut self,
        what: &str,
        name: &Spanned<String>,
        defined: &BTreeMap<String, Defined>,
    ) -> bool {
        let Some(first) = defined.get(name.get_ref()) else {
            return false;
        };
        let message = format!(
            "duplicate {what} name {:?}: first defined at {}",
            name.get_ref(),
            self.place(first)
        );
        self.error(name.span(), message);
        true
    }

    /// `[alerting]` of the main file (`self.file` is the main file).
    pub(super) fn alerting_settings(
        &mut self,
        raw: Option<&Spanned<RawAlerting>>,
        catalog: &Catalog,
    ) -> Option<Settings> {
        let Some(raw) = raw else {
            return Some(Settings {
                dry_run: false,
                instance: None,
                route: Route::default(),
                external_url: None,
                ack_link_ttl: DEFAULT_ACK_LINK_TTL,
            });
        };
        let before = self.problems.len();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [alerting]", RawAlerting::KEYS);
        let warning = self.notifier_refs(r.warning.as_ref(), catalog);
        let critical = self.notifier_refs(r.critical.as_ref(), catalog);
        let route = Route {
            warning: warning?,
            critical: critical?,
        };
        let instance = match &r.instance {
            None => None,
            Some(v) => {
                let text = self.text(v);
                match text.as_deref().map(crate::alert::valid_instance) {
                    Some(Err(e)) => {
                        self.error(v.span(), e);
                        None
                    }
                    _ => text,
                }
            }
        };
        let external_url = match &r.external_url {
            None => None,
            Some(v) => self
                .http_url(v, "external_url")
                .map(|u| u.trim_end_matches('/').to_string()),
        };
        let ack_link_ttl = match &r.ack_link_ttl {
            None => Some(DEFAULT_ACK_LINK_TTL),
            Some(v) => self.positive_duration(v, "ack_link_ttl"),
        };
        (self.problems.len() == before).then(|| Settings {
            dry_run: r.dry_run.as_ref().is_some_and(|v| *v.get_ref()),
            instance,
            route,
            external_url,
            ack_link_ttl: ack_link_ttl.unwrap_or(DEFAULT_ACK_LINK_TTL),
        })
    }

    /// A rule's `notify` and `hooks`: `Some(None)` when it has neither (or only `hooks = []`,
    /// which changes nothing), `None` on error.
    pub(super) fn rule_actions(
        &mut self,
        r: &RawRule,
        catalog: &Catalog,
    ) -> Option<Option<RuleActions>> {
        self.actions(r.notify.as_ref(), r.hooks.as_ref(), catalog)
    }

    /// A rule's (or an SLO's) `notify` and `hooks`.
    pub(super) fn actions(
        &mut self,
        notify: Option<&Spanned<RawNotify>>,
        hook_list: Option<&Spanned<Vec<Spanned<RawHookTrigger>>>>,
        catalog: &Catalog,
    ) -> Option<Option<RuleActions>> {
        if notify.is_none() && hook_list.is_none() {
            return Some(None);
        }
        let before = self.problems.len();
        let route = match notify {
            None => Some(None),
            Some(v) => self.rule_route(v, catalog).map(Some),
        };
        let mut hooks = Vec::new();
        let mut listed: Vec<&str> = Vec::new();
        for entry in hook_list.iter().flat_map(|l| l.get_ref()) {
            let t = entry.get_ref();
            self.unknown_keys(&t.unknown, "in a rule's hooks entry", RawHookTrigger::KEYS);
            let hook = match &t.hook {
                None => {
                    self.error(
                        entry.span(),
                        r#"missing required key "hook" in a rule's hooks entry, e.g. { hook = "rollback-api", on = "critical" }"#,
                    );
                    None
                }
                Some(v) => {
                    let name = v.get_ref().as_str();
                    if listed.contains(&name) {
                        self.error(
                            v.span(),
                            format!("hook {name:?} is listed twice in this rule"),
                        );
                        None
                    } else {
                        listed.push(name);
                        self.known_name(v, "hook", &catalog.hook_names, catalog.complete)
                    }
                }
            };
            let on = match &t.on {
                None => Some(Severity::Critical),
                Some(v) => self.one_of(
                    v,
                    "hook level",
                    &[
                        ("warning", Severity::Warning),
                        ("critical", Severity::Critical),
                    ],
                ),
            };
            let after = match &t.after {
                None => Some(Duration::ZERO),
                Some(v) => self.duration(v, "after", Duration::ZERO),
            };
            // Whether the confirming rules exist is known only once every rule and SLO is
            // compiled: `confirm_refs` checks that.
            let mut confirm: Vec<String> = Vec::new();
            for v in t.confirm.iter().flat_map(|l| l.get_ref()) {
                if confirm.contains(v.get_ref()) {
                    self.error(
                        v.span(),
                        format!("rule {:?} is listed twice in confirm", v.get_ref()),
                    );
                } else {
                    confirm.push(v.get_ref().clone());
                }
            }
            let verify = match &t.verify {
                None => Some(None),
                Some(v) => self.duration(v, "verify", Duration::from_secs(1)).map(Some),
            };
            if let (Some(hook), Some(on), Some(after), Some(verify)) = (hook, on, after, verify) {
                hooks.push(HookTrigger {
                    hook,
                    on,
                    after,
                    confirm,
                    verify,
                });
            }
        }
        let route = route?;
        if self.problems.len() != before {
            return None;
        }
        Some((route.is_some() || !hooks.is_empty()).then_some(RuleActions { route, hooks }))
    }

    /// The `confirm` lists of the hooks of rule (or SLO) `owner`: each names another rule or
    /// SLO (`rules`, every one compiled). An unknown name is reported only when every file was
    /// parsed.
    pub(super) fn confirm_refs(
        &mut self,
        owner: &str,
        hook_list: Option<&Spanned<Vec<Spanned<RawHookTrigger>>>>,
        rules: &[String],
        complete: bool,
    ) {
        let entries = hook_list.iter().flat_map(|l| l.get_ref());
        for v in entries.flat_map(|e| e.get_ref().confirm.iter().flat_map(|l| l.get_ref())) {
            let name = v.get_ref();
            if name == owner {
                self.error(
                    v.span(),
                    format!(
                        "rule {name:?} cannot confirm its own hook: confirm names a second, \
                         independent rule (e.g. the service's health check)"
                    ),
                );
            } else if !rules.contains(name) && complete {
                self.error(v.span(), unknown_name_message("rule", name, rules));
            }
        }
    }

    /// `notify = ["a"]` (both levels) or `notify = { warning = [...], critical = [...] }`.
    pub(super) fn rule_route(
        &mut self,
        v: &Spanned<RawNotify>,
        catalog: &Catalog,
    ) -> Option<Route> {
        match v.get_ref() {
            RawNotify::Both(list) => {
                let names = self.notifier_list(list, catalog)?;
                Some(Route {
                    warning: names.clone(),
                    critical: names,
                })
            }
            RawNotify::Table(t) => {
                self.unknown_keys(&t.unknown, "in notify", RawNotifyTable::KEYS);
                let warning = self.notifier_refs(t.warning.as_ref(), catalog);
                let critical = self.notifier_refs(t.critical.as_ref(), catalog);
                Some(Route {
                    warning: warning?,
                    critical: critical?,
                })
            }
        }
    }

    /// A list of notifier names; an absent list is empty.
    fn notifier_refs(&mut self, list: Option<&NameList>, catalog: &Catalog) -> Option<Vec<String>> {
        match list {
            None => Some(Vec::new()),
            Some(l) => self.notifier_list(l.get_ref(), catalog),
        }
    }

    /// Notifier names: defined, each listed once.
    fn notifier_list(
        &mut self,
        list: &[Spanned<String>],
        catalog: &Catalog,
    ) -> Option<Vec<String>> {
        let before = self.problems.len();
        let mut names: Vec<String> = Vec::new();
        for v in list {
            if names.contains(v.get_ref()) {
                let message = format!("notifier {:?} is listed twice", v.get_ref());
                self.error(v.span(), message);
            } else if let Some(name) =
                self.known_name(v, "notifier", &catalog.notifier_names, catalog.complete)
            {
                names.push(name);
            }
        }
        (self.problems.len() == before).then_some(names)
    }

    /// A reference to a defined notifier or hook. An unknown name is reported only when every
    /// file was parsed (a file that failed to parse may define it).
    pub(super) fn known_name(
        &mut self,
        v: &Spanned<String>,
        what: &str,
        names: &[String],
        complete: bool,
    ) -> Option<String> {
        let wanted = v.get_ref();
        if names.contains(wanted) {
            return Some(wanted.clone());
        }
        if complete {
            self.error(v.span(), unknown_name_message(what, wanted, names));
        }
        None
    }

    /// Returns the notifier's valid name (even when the rest is invalid) and its config when
    /// it has no error and [`notifier::check`] accepts it.
    fn notifier(
        &mut self,
        raw: &Spanned<RawNotifier>,
    ) -> (Option<Spanned<String>>, Option<NotifierConfig>) {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        let name = self.name(r.name.as_ref(), &header, "notifier");
        let kind = self.kind(r.kind.as_ref(), &header, "notifier", &TYPES);
        self.kind_keys(
            &NOTIFIER_KEYS,
            "notifier",
            kind.map(|k| (k, k.name())),
            &r.keys,
            &r.unknown,
        );
        let timeout = match &r.timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(v) => self.positive_duration(v, "timeout"),
        };
        let compiled = match kind {
            Some(Type::Webhook) => self.webhook(r, &header).map(NotifierKind::Webhook),
            Some(Type::Slack) => self.slack(r, &header).map(NotifierKind::Slack),
            Some(Type::PagerDuty) => self.pagerduty(r, &header).map(NotifierKind::PagerDuty),
            Some(Type::Alertmanager) => self
                .alertmanager(r, &header)
                .map(NotifierKind::Alertmanager),
            Some(Type::Email) => self.email(r, &header).map(NotifierKind::Email),
            None => None,
        };
        let config = match (&name, timeout, compiled) {
            (Some(name), Some(timeout), Some(kind)) if self.problems.len() == before => {
                Some(NotifierConfig {
                    name: name.get_ref().clone(),
                    timeout,
                    kind,
                })
            }
            _ => None,
        };
        // What only the settings as a whole tell; the message names the notifier, never a
        // secret.
        let config = config.and_then(|config| match notifier::check(&config) {
            Ok(()) => Some(config),
            Err(e) => {
                self.error(header.clone(), e);
                None
            }
        });
        let config = config.and_then(|config| match self.email_ca(&config) {
            Ok(()) => Some(config),
            Err(e) => {
                self.error(header.clone(), e);
                None
            }
        });
        (name, config)
    }

    /// An `email` notifier's CA bundle parses ([`notifier::check_ca_pem`]); `ca_file` has
    /// checked that it is readable and holds a certificate marker.
    fn email_ca(&self, config: &NotifierConfig) -> Result<(), String> {
        let NotifierKind::Email(EmailConfig {
            ca_file: Some(path),
            ..
        }) = &config.kind
        else {
            return Ok(());
        };
        let pem = (self.host.read)(path).map_err(|e| {
            format!(
                "notifier {:?}: read ca_file {}: {e}",
                config.name,
                path.display()
            )
        })?;
        notifier::check_ca_pem(config, path, &pem)
    }

    fn missing_in(&mut self, header: &Span, key: &str, kind: Type) {
        self.missing(
            header.clone(),
            key,
            &format!("[[notifier]] of kind {:?}", kind.name()),
        );
    }

    /// A required plain key of a notifier kind.
    fn required_key<'r>(
        &mut self,
        v: &'r Option<Spanned<String>>,
        header: &Span,
        key: &str,
        kind: Type,
    ) -> Option<&'r Spanned<String>> {
        if v.is_none() {
            self.missing_in(header, key, kind);
        }
        v.as_ref()
    }

    /// `key = "..."` or `key_file = "path"`: a secret, optional.
    fn notifier_secret(
        &mut self,
        r: &RawNotifier,
        key: &str,
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
    ) -> Option<Option<(Secret, Span)>> {
        let file_key = format!("{key}_file");
        let file = file
            .as_ref()
            .map(|v| (v, r.key_span(&file_key).unwrap_or_else(|| v.span())));
        self.secret(key, inline.as_ref(), file)
    }

    /// `key = "..."` or `key_file = "path"`: a secret, required.
    fn required_secret(
        &mut self,
        r: &RawNotifier,
        header: &Span,
        (key, kind): (&str, Type),
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
    ) -> Option<(Secret, Span)> {
        let secret = self.notifier_secret(r, key, inline, file)?;
        if secret.is_none() {
            self.error(
                header.clone(),
                format!(
                    r#"missing required key "{key}" (or "{key}_file") in [[notifier]] of kind {:?}"#,
                    kind.name()
                ),
            );
        }
        secret
    }

    /// A secret URL (`key`, or read from `key_file` when `inline` is absent): http or https
    /// with a host. The message names the key, not the URL (its path is often the credential).
    fn secret_url(
        &mut self,
        (secret, span): (Secret, Span),
        key: &str,
        inline: &Option<Spanned<String>>,
    ) -> Option<Secret> {
        if is_http_url(secret.expose()) {
            return Some(secret);
        }
        let what = match inline {
            Some(_) => key.to_string(),
            None => format!("the {key} in {key}_file"),
        };
        self.error(
            span,
            format!("{what} must be an http:// or https:// URL with a host"),
        );
        None
    }

    /// An optional string, interpolated: `Some(None)` when absent, `None` on error.
    fn optional(&mut self, v: &Option<Spanned<String>>) -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(v) => self.text(v).map(Some),
        }
    }

    /// An optional string that must not be empty when set.
    fn optional_nonempty(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
    ) -> Option<Option<String>> {
        let Some(v) = v else { return Some(None) };
        let text = self.text(v)?;
        if text.trim().is_empty() {
            self.error(v.span(), format!("{key} must not be empty"));
            return None;
        }
        Some(Some(text))
    }

    fn optional_url(&mut self, v: &Option<Spanned<String>>, key: &str) -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(v) => self.http_url(v, key).map(Some),
        }
    }

    fn webhook(&mut self, r: &RawNotifier, header: &Span) -> Option<WebhookConfig> {
        let url = self
            .required_secret(r, header, ("url", Type::Webhook), &r.url, &r.url_file)
            .and_then(|s| self.secret_url(s, "url", &r.url));
        let headers = self.headers(r.headers.as_ref());
        let format = match &r.format {
            None => Some(WebhookFormat::Warden),
            Some(v) => self.one_of(
                v,
                "webhook format",
                &[
                    ("warden", WebhookFormat::Warden),
                    ("alertmanager", WebhookFormat::Alertmanager),
                ],
            ),
        };
        let template = match &r.template {
            None => Some(None),
            Some(v) => self.text(v).and_then(|text| match Template::parse(&text) {
                Ok(_) => Some(Some(text)),
                Err(e) => {
                    self.error(v.span(), e);
                    None
                }
            }),
        };
        let external_url = self.optional_url(&r.external_url, "external_url");
        Some(WebhookConfig {
            url: url?,
            headers,
            format: format?,
            template: template?,
            external_url: external_url?,
        })
    }

    fn slack(&mut self, r: &RawNotifier, header: &Span) -> Option<SlackConfig> {
        let webhook_url = self
            .required_secret(
                r,
                header,
                ("webhook_url", Type::Slack),
                &r.webhook_url,
                &r.webhook_url_file,
            )
            .and_then(|s| self.secret_url(s, "webhook_url", &r.webhook_url));
        let channel = self.optional_nonempty(&r.channel, "channel");
        let username = self.optional_nonempty(&r.username, "username");
        Some(SlackConfig {
            webhook_url: webhook_url?,
            channel: channel?,
            username: username?,
        })
    }

    fn pagerduty(&mut self, r: &RawNotifier, header: &Span) -> Option<PagerDutyConfig> {
        let routing_key = self.required_secret(
            r,
            header,
            ("routing_key", Type::PagerDuty),
            &r.routing_key,
            &r.routing_key_file,
        );
        let url = match &r.url {
            None => Some(PAGERDUTY_EVENTS_URL.to_string()),
            Some(v) => self.http_url(v, "url"),
        };
        let source = match &r.source {
            None => Some(self.host_name()),
            Some(v) => self.text(v).and_then(|text| {
                if text.trim().is_empty() {
                    self.error(
                        v.span(),
                        "source must not be empty (the default is this host's name)",
                    );
                    None
                } else {
                    Some(text)
                }
            }),
        };
        let component = self.optional(&r.component);
        let group = self.optional(&r.group);
        let class = self.optional(&r.class);
        Some(PagerDutyConfig {
            routing_key: routing_key?.0,
            url: url?,
            source: source?,
            component: component?,
            group: group?,
            class: class?,
        })
    }

    /// This machine's name for PagerDuty's `source`, `warden` when it cannot be read.
    fn host_name(&self) -> String {
        (self.host.read)(Path::new(HOSTNAME_FILE))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "warden".to_string())
    }

    fn alertmanager(&mut self, r: &RawNotifier, header: &Span) -> Option<AlertmanagerConfig> {
        let url = self
            .required_key(&r.url, header, "url", Type::Alertmanager)
            .and_then(|v| self.http_url(v, "url"));
        let resend_every = match &r.resend_every {
            None => Some(DEFAULT_RESEND_EVERY),
            Some(v) => self.positive_duration(v, "resend_every"),
        };
        let generator_url = self.optional_url(&r.generator_url, "generator_url");
        Some(AlertmanagerConfig {
            url: url?,
            resend_every: resend_every?,
            generator_url: generator_url?,
        })
    }

    fn email(&mut self, r: &RawNotifier, header: &Span) -> Option<EmailConfig> {
        let smtp = self
            .required_key(&r.smtp, header, "smtp", Type::Email)
            .and_then(|v| self.text(v));
        let tls = match &r.tls {
            None => Some(EmailTls::StartTls),
            Some(v) => self.one_of(
                v,
                "tls",
                &[
                    ("none", EmailTls::None),
                    ("starttls", EmailTls::StartTls),
                    ("implicit", EmailTls::Implicit),
                ],
            ),
        };
        let username = self.optional_nonempty(&r.username, "username");
        let password = self.notifier_secret(r, "password", &r.password, &r.password_file);
        let from = self
            .required_key(&r.from, header, "from", Type::Email)
            .and_then(|v| self.text(v));
        let to = match &r.to {
            None => {
                self.missing_in(header, "to", Type::Email);
                None
            }
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span(),
                    r#"to needs at least one address, e.g. to = ["oncall@example.com"]"#,
                );
                None
            }
            Some(list) => list
                .get_ref()
                .iter()
                .map(|v| self.text(v))
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Option<Vec<String>>>(),
        };
        let ca_file = self.ca_file(r.ca_file.as_ref());
        Some(EmailConfig {
            smtp: smtp?,
            tls: tls?,
            username: username?,
            password: password?.map(|(secret, _)| secret),
            from: from?,
            to: to?,
            ca_file: ca_file?,
            accept_invalid_certs: r
                .accept_invalid_certs
                .as_ref()
                .is_some_and(|v| *v.get_ref()),
        })
    }

    /// Returns the hook's valid name (even when the rest is invalid) and its spec when it has
    /// no error. `catalog` holds the notifiers its `notify` may name.
    fn hook(
        &mut self,
        raw: &Spanned<RawHook>,
        catalog: &Catalog,
    ) -> (Option<Spanned<String>>, Option<HookSpec>) {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [[hook]]", RawHook::KEYS);
        let name = self.name(r.name.as_ref(), &header, "hook");
        let command = self
            .program(
                r.command.as_ref(),
                r.shell.as_ref(),
                r.key_span("shell"),
                &header,
                r#"[[hook]], e.g. command = ["systemctl", "restart", "api"]"#,
            )
            .map(|program| match program {
                ExecProgram::Argv(argv) => HookCommand::Argv(argv),
                ExecProgram::Shell(line) => HookCommand::Shell(line),
            });
        // The defaults live with the hook runner.
        let defaults = HookConfig::new("", HookCommand::Argv(Vec::new()));
        let timeout = match &r.timeout {
            None => Some(defaults.timeout),
            Some(v) => self.positive_duration(v, "timeout"),
        };
        let cooldown = match &r.cooldown {
            None => Some(defaults.cooldown),
            Some(v) => self.duration(v, "cooldown", Duration::ZERO),
        };
        let env = self.env(r.env.as_ref());
        let workdir = self.workdir(r.workdir.as_ref());
        let max_output_bytes = match &r.max_output_bytes {
            None => Some(defaults.max_output_bytes),
            Some(v) => self
                .int(v, "max_output_bytes", 1, MAX_OUTPUT_BYTES)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let notify = match &r.notify {
            None => Some(None),
            Some(list) => self.notifier_list(list.get_ref(), catalog).map(Some),
        };
        let spec = (|| {
            let mut config = HookConfig::new(name.as_ref()?.get_ref(), command?);
            config.timeout = timeout?;
            config.cooldown = cooldown?;
            config.dry_run = r.dry_run.as_ref().is_some_and(|v| *v.get_ref());
            config.env = env.into_iter().collect();
            config.workdir = workdir?;
            config.max_output_bytes = max_output_bytes?;
            Some(HookSpec {
                config,
                diagnostic: r.diagnostic.as_ref().is_some_and(|v| *v.get_ref()),
                notify: notify?,
            })
        })();
        let spec = spec.filter(|_| self.problems.len() == before);
        (name, spec)
    }
}
