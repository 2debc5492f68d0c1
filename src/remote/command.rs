//! Command providers: a remote reference `NAME://…` whose value is what a
//! program prints, as `op read op://…` or `pass show PATH` do. It owns the
//! built-in presets (`op`, `pass`, `aws-sm`, `gcp-sm`), the `[providers.NAME]`
//! table of config.toml, the placeholders, and running the program safely;
//! the dispatcher in `remote` decides which scheme reaches it.
//!
//! Configuration. `[providers.NAME]` with `command = ["prog", "arg", …]`
//! defines (or, for a preset's name, replaces) the provider for `NAME://…`.
//! Two placeholders are replaced in any argument but the program, whole or
//! inside the argument, in one pass (a reference that itself contains
//! `{ref}` is not expanded again): `{ref}` by the full reference
//! (`NAME://rest`, what `op read` wants) and `{path}` by the text after
//! `NAME://` (what `pass show` wants). `timeout` (a duration, "10s"; default
//! 30 s) bounds the whole run; `first_line = true` keeps only the first line
//! of the output. A `[providers.NAME]` for a preset may omit `command` to keep
//! the preset and only tune `timeout` or `first_line`; with a `command` the
//! preset is replaced entirely (`first_line` then defaults to false). The
//! program itself may not hold a placeholder. The names `vault`, `openbao`,
//! `bao` and `azure-kv` belong to the built-in stores and never reach here.
//!
//! Presets, used when config.toml does not name the scheme:
//! * `op://VAULT/ITEM/FIELD` runs `op read op://VAULT/ITEM/FIELD`;
//! * `pass://PATH` runs `pass show PATH` and keeps the FIRST LINE only (pass
//!   keeps the password there and metadata below; `first_line = false` in
//!   `[providers.pass]` keeps everything);
//! * `aws-sm://SECRET_ID[#KEY]` runs `aws secretsmanager get-secret-value
//!   --secret-id SECRET_ID --query SecretString --output text`; with `#KEY`
//!   the SecretString is parsed as a JSON object and the value of KEY
//!   (string, number or boolean) is the value. A secret without SecretString
//!   (binary only), which aws prints as `None`, is an error;
//! * `gcp-sm://PROJECT/SECRET[/VERSION]` runs `gcloud secrets versions access
//!   VERSION --secret SECRET --project PROJECT` (VERSION defaults to latest;
//!   like every provider's output, the payload loses one trailing newline).
//!
//! Running. No shell is involved: the argv is run as given, with stdin
//! `/dev/null`, in a process group of its own, with the inherited environment
//! minus `secret`'s control variables (`SECRET_PASSPHRASE` never reaches a
//! provider). The reference is checked first: no control characters (NUL
//! included), nothing that starts with `-` where it could be read as an
//! option, and nothing that starts with `file:`, `fileb:`, `http:` or
//! `https:` (any case), which a CLI could load as a file or URL. stdout is the value: at most 1 MiB plus one trailing newline,
//! which is stripped (one, only); it is read into buffers that are wiped,
//! may be any bytes but NUL, and must not be empty. On timeout the whole
//! process group is killed. A provider cannot prompt on the terminal (its
//! stdin is empty and its group is not the terminal's foreground): sign in
//! first (`op signin`, a cached gpg-agent passphrase) or use a graphical
//! prompt. stderr is kept in a wiped buffer and, when the provider fails,
//! its first 512 bytes go into the error message: it is the provider's
//! diagnostic channel, not its value, but a provider that prints the secret
//! there would have it shown; that is accepted. Values go only into
//! [`SecretValue`] and are never logged.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::child::env::CONTROL_VARIABLES;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::value::{MAX_VALUE_LEN, SecretValue};

/// How long a provider may run when config.toml does not say.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a failing provider's stderr goes into the error message.
pub(crate) const STDERR_SHOWN: usize = 512;

/// The schemes that work without configuration.
pub(crate) const PRESETS: &[&str] = &["op", "pass", "aws-sm", "gcp-sm"];

/// The placeholder for the full reference, `NAME://rest`.
pub(crate) const REF_PLACEHOLDER: &str = "{ref}";

/// The placeholder for the text after `NAME://`.
pub(crate) const PATH_PLACEHOLDER: &str = "{path}";

/// Why a reference (or part of one) that starts with '-' is refused.
const OPTION_LIKE: &str = "starts with '-', which the provider could take for an option; refused";

/// What a provider's CLI may read as "load the parameter from here" rather
/// than as a name: the AWS CLI loads `file://` and `fileb://` parameters
/// (version 1 also `http://` and `https://`). A reference (the text after
/// `NAME://`, or the whole reference for `{ref}`) that starts with one of
/// these schemes, in any case and with any number of slashes, is refused:
/// the whole family, not one CLI's exact spelling of it.
const LOADER_PREFIXES: &[&str] = &["file:", "fileb:", "http:", "https:"];

/// How much stderr is read at all; the rest is drained and dropped.
const STDERR_READ: usize = 64 * 1024;

/// How long to wait for a killed provider to be reaped and its pipes to close.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// `[providers.NAME]` in config.toml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// argv; `{ref}` is replaced by the full reference (`NAME://rest`),
    /// `{path}` by the text after `NAME://`. Empty (or absent) for a
    /// preset's name: keep the preset's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// How long the command may run, e.g. "10s" or "1m30s"; 30 s if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Keep only the first line of the output. Default: true for the `pass`
    /// preset, false otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_line: Option<bool>,
}

/// `NAME://rest` for a configured or preset command provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    scheme: String,
    rest: String,
}

/// What to make of the provider's output, after its trailing newline is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Output {
    Whole,
    FirstLine,
    /// aws-sm: `None` means no SecretString; with a key, pick it from JSON.
    Aws(Option<String>),
}

/// Everything needed to run one provider for one reference.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Plan {
    argv: Vec<String>,
    timeout: Duration,
    output: Output,
    /// Hint when the program is not found.
    missing: String,
    /// Hint when the program fails.
    failed: String,
    /// Hint on timeout.
    slow: String,
}

impl Reference {
    /// `Some` when `scheme` is configured in `config` or a preset (then the
    /// result says whether `rest` is a valid reference for it); `None` when
    /// this module does not know the scheme.
    pub fn parse(scheme: &str, rest: &str, config: &Config) -> Option<Result<Self>> {
        if !config.providers.contains_key(scheme) && !PRESETS.contains(&scheme) {
            return None;
        }
        let reference = Self {
            scheme: scheme.to_owned(),
            rest: rest.to_owned(),
        };
        Some(reference.plan(config).map(|_| reference))
    }

    /// The scheme, `NAME`.
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The text after `NAME://`.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.rest
    }

    /// The argv that [`Reference::fetch`] would run, for diagnostics and
    /// tests. It holds the reference, never a value.
    pub fn argv(&self, config: &Config) -> Result<Vec<String>> {
        Ok(self.plan(config)?.argv)
    }

    /// Runs the provider and returns what it printed.
    pub fn fetch(&self, config: &Config) -> Result<SecretValue> {
        let plan = self.plan(config)?;
        self.run(&plan)
    }

    fn remote_error(&self, message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Remote {
            reference: super::escape_for_terminal(&self.to_string()),
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn usage(&self, problem: &str, hint: impl Into<String>) -> Error {
        Error::usage_hint(
            format!(
                "reference \"{}\": {problem}",
                super::escape_for_terminal(&self.to_string())
            ),
            hint,
        )
    }

    /// Checks the reference text and works out what to run.
    fn plan(&self, config: &Config) -> Result<Plan> {
        let full = self.to_string();
        if self.rest.is_empty() {
            return Err(self.usage("nothing after \"://\"", self.example()));
        }
        if full.chars().any(char::is_control) {
            return Err(self.usage(
                "contains a control character (NUL, newline, …)",
                "write the reference on one line, without control characters",
            ));
        }
        if self.rest.starts_with('-') || full.starts_with('-') {
            return Err(self.usage(OPTION_LIKE, self.example()));
        }
        if let Some(prefix) = [&self.rest, &full].into_iter().find_map(|text| {
            LOADER_PREFIXES.iter().find(|p| {
                text.get(..p.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(p))
            })
        }) {
            return Err(self.usage(
                &format!(
                    "starts with \"{prefix}\", which the provider's CLI could read as a local file or URL to load instead of a secret's name; refused"
                ),
                format!("name the secret itself; {}", self.example()),
            ));
        }
        let configured = config.providers.get(&self.scheme);
        let mut plan = match configured {
            Some(p) if !p.command.is_empty() => self.configured(p)?,
            _ => self.preset()?,
        };
        if let Some(p) = configured {
            if let Some(text) = &p.timeout {
                plan.timeout = parse_timeout(&self.scheme, text)?;
            }
            match p.first_line {
                Some(true) if plan.output == Output::Whole => plan.output = Output::FirstLine,
                Some(true) => {
                    return Err(Error::usage_hint(
                        format!(
                            "[providers.{}]: first_line does not apply to this preset",
                            self.scheme
                        ),
                        "remove first_line from it in config.toml",
                    ));
                }
                Some(false) if plan.output == Output::FirstLine => plan.output = Output::Whole,
                _ => {}
            }
        }
        Ok(plan)
    }

    fn example(&self) -> String {
        match self.scheme.as_str() {
            "op" => "write it as op://VAULT/ITEM/FIELD".into(),
            "pass" => "write it as pass://PATH/IN/STORE".into(),
            "aws-sm" => "write it as aws-sm://SECRET_ID or aws-sm://SECRET_ID#JSON_KEY".into(),
            "gcp-sm" => {
                "write it as gcp-sm://PROJECT/SECRET or gcp-sm://PROJECT/SECRET/VERSION".into()
            }
            other => {
                format!("write it as {other}://PATH, as [providers.{other}] in config.toml expects")
            }
        }
    }

    /// A `[providers.NAME]` with a command.
    fn configured(&self, provider: &ProviderConfig) -> Result<Plan> {
        let name = &self.scheme;
        let (program, args) = provider
            .command
            .split_first()
            .ok_or_else(|| Error::usage(format!("[providers.{name}] has an empty command")))?;
        if program.is_empty()
            || program.contains(REF_PLACEHOLDER)
            || program.contains(PATH_PLACEHOLDER)
        {
            return Err(Error::usage_hint(
                format!(
                    "[providers.{name}]: the program (first word of command) must be a fixed, non-empty name"
                ),
                "put {ref} or {path} in the arguments, e.g. command = [\"op\", \"read\", \"{ref}\"]",
            ));
        }
        let full = self.to_string();
        let mut argv = vec![program.clone()];
        argv.extend(args.iter().map(|a| substitute(a, &full, &self.rest)));
        Ok(Plan {
            argv,
            timeout: DEFAULT_TIMEOUT,
            output: Output::Whole,
            missing: format!(
                "put \"{program}\" on PATH, or give its full path in [providers.{name}] command in config.toml"
            ),
            failed: format!(
                "run the command of [providers.{name}] in config.toml by hand to see what it needs"
            ),
            slow: format!(
                "raise timeout in [providers.{name}] of config.toml (e.g. timeout = \"60s\"), or check whether the provider waits for a login"
            ),
        })
    }

    /// A built-in preset.
    fn preset(&self) -> Result<Plan> {
        let name = &self.scheme;
        let rest = self.rest.as_str();
        let slow = format!(
            "check whether {name} waits for a login; a longer limit goes in config.toml: [providers.{name}] timeout = \"60s\""
        );
        let plan = |argv: Vec<String>, output, missing: &str, failed: &str| Plan {
            argv,
            timeout: DEFAULT_TIMEOUT,
            output,
            missing: format!(
                "{missing}; or define [providers.{name}] command = [\"/path/to/prog\", …, \"{{ref}}\"] in config.toml"
            ),
            failed: failed.to_owned(),
            slow: slow.clone(),
        };
        match name.as_str() {
            "op" => Ok(plan(
                vec!["op".into(), "read".into(), self.to_string()],
                Output::Whole,
                "install the 1Password CLI (op): https://developer.1password.com/docs/cli/get-started/",
                "check that op is signed in (op whoami) and that the reference exists: op read \"op://VAULT/ITEM/FIELD\"",
            )),
            "pass" => Ok(plan(
                vec!["pass".into(), "show".into(), rest.to_owned()],
                Output::FirstLine,
                "install pass (Debian/Ubuntu: apt-get install pass; macOS: brew install pass)",
                "check the entry with: pass show PATH (PASSWORD_STORE_DIR and GNUPGHOME are passed on)",
            )),
            "aws-sm" => {
                let (id, key) = match rest.split_once('#') {
                    Some((id, key)) => (id, Some(key)),
                    None => (rest, None),
                };
                if id.is_empty() || key.is_some_and(str::is_empty) {
                    return Err(self.usage(
                        "needs a secret id, and a key after '#' if '#' is given",
                        self.example(),
                    ));
                }
                // The AWS CLI reads a parameter that looks like a URL
                // (file://, fileb://, http://, https://) from there.
                if id.contains("://") {
                    return Err(self.usage(
                        "the secret id contains \"://\", which the AWS CLI would read as a file or URL to load; refused",
                        "use the secret's name or ARN",
                    ));
                }
                Ok(plan(
                    [
                        "aws",
                        "secretsmanager",
                        "get-secret-value",
                        "--secret-id",
                        id,
                        "--query",
                        "SecretString",
                        "--output",
                        "text",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    Output::Aws(key.map(str::to_owned)),
                    "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
                    "check the AWS credentials and region (aws sts get-caller-identity) and the secret id",
                ))
            }
            "gcp-sm" => {
                let parts: Vec<&str> = rest.split('/').collect();
                let (project, secret, version) = match parts[..] {
                    [p, s] => (p, s, "latest"),
                    [p, s, v] => (p, s, v),
                    _ => {
                        return Err(self.usage(
                            "needs PROJECT/SECRET or PROJECT/SECRET/VERSION",
                            self.example(),
                        ));
                    }
                };
                if [project, secret, version].iter().any(|p| p.is_empty()) {
                    return Err(self.usage(
                        "PROJECT, SECRET and VERSION must not be empty",
                        self.example(),
                    ));
                }
                if [project, secret, version]
                    .iter()
                    .any(|p| p.starts_with('-') || p.starts_with('@') || p.contains(':'))
                {
                    return Err(self.usage(
                        "PROJECT, SECRET or VERSION starts with '-' or '@' or contains ':', which gcloud could take for an option, a file or a URL; refused",
                        self.example(),
                    ));
                }
                Ok(plan(
                    [
                        "gcloud",
                        "secrets",
                        "versions",
                        "access",
                        version,
                        "--secret",
                        secret,
                        "--project",
                        project,
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    Output::Whole,
                    "install the Google Cloud CLI (gcloud): https://cloud.google.com/sdk/docs/install",
                    "check gcloud's login (gcloud auth login) and the project, secret and version",
                ))
            }
            other => Err(Error::usage_hint(
                format!("[providers.{other}] in config.toml has no command"),
                format!(
                    "add one, e.g. command = [\"prog\", \"{{path}}\"]; only {} work without",
                    PRESETS.join(", ")
                ),
            )),
        }
    }

    /// Runs `plan` and turns its output into the value.
    fn run(&self, plan: &Plan) -> Result<SecretValue> {
        let shown = shown(&plan.argv);
        let (program, args) = plan
            .argv
            .split_first()
            .ok_or_else(|| self.remote_error("the provider has no command", plan.failed.clone()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for name in CONTROL_VARIABLES {
            command.env_remove(name);
        }
        let mut child = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => self.remote_error(
                format!("the provider program \"{program}\" was not found"),
                plan.missing.clone(),
            ),
            io::ErrorKind::PermissionDenied => self.remote_error(
                format!("cannot execute the provider program \"{program}\": {e}"),
                "check that it is a program and has its execute bit (chmod +x)",
            ),
            _ => self.remote_error(format!("cannot start {shown}: {e}"), plan.failed.clone()),
        })?;
        let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Event::Stdout(read_capped(out, MAX_VALUE_LEN + 1, false)));
            });
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Event::Stderr(read_capped(err, STDERR_READ, true)));
            });
        }
        std::thread::spawn(move || {
            let _ = tx.send(Event::Exited(child.wait()));
        });
        let kill = || {
            if let Some(group) = group {
                let _ = killpg(group, Signal::SIGKILL);
            }
        };

        let deadline = Instant::now()
            .checked_add(plan.timeout)
            .ok_or_else(|| self.remote_error("the timeout is too long", plan.failed.clone()))?;
        let mut status = None;
        let mut stdout = None;
        let mut stderr = None;
        while status.is_none() || stdout.is_none() || stderr.is_none() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Exited(s)) => status = Some(s),
                Ok(Event::Stdout(Ok((_, true)))) => {
                    kill();
                    return Err(self.remote_error(
                        format!("{shown} printed more than {MAX_VALUE_LEN} bytes (1 MiB); it was stopped"),
                        plan.failed.clone(),
                    ));
                }
                Ok(Event::Stdout(read)) => stdout = Some(read.map(|(bytes, _)| bytes)),
                Ok(Event::Stderr(read)) => {
                    stderr = Some(read.map(|(bytes, _)| bytes).unwrap_or_default())
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    kill();
                    let exited = status.is_some();
                    // Collect what the killed group left on stderr.
                    let now = Instant::now();
                    let grace = now.checked_add(KILL_GRACE).unwrap_or(now);
                    while stderr.is_none() {
                        match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                            Ok(Event::Stderr(read)) => {
                                stderr = Some(read.map(|(bytes, _)| bytes).unwrap_or_default());
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    let why = if exited {
                        " (it had exited, but a process it started kept its output open)"
                    } else {
                        ""
                    };
                    return Err(self.remote_error(
                        format!(
                            "{shown} did not finish within the timeout of {}{why}; it was killed with its process group{}",
                            crate::duration::format(plan.timeout),
                            stderr_note(stderr.as_deref().map(Vec::as_slice))
                        ),
                        plan.slow.clone(),
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let stderr = stderr.unwrap_or_default();
        let status = match status {
            Some(Ok(status)) => status,
            Some(Err(e)) => {
                return Err(
                    self.remote_error(format!("waiting for {shown}: {e}"), plan.failed.clone())
                );
            }
            None => {
                return Err(
                    self.remote_error(format!("lost track of {shown}"), plan.failed.clone())
                );
            }
        };
        if !status.success() {
            return Err(self.remote_error(
                format!(
                    "{shown} failed ({}){}",
                    describe(status),
                    stderr_note(Some(&stderr))
                ),
                plan.failed.clone(),
            ));
        }
        let stdout = match stdout {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                return Err(self.remote_error(
                    format!("reading the output of {shown}: {e}"),
                    plan.failed.clone(),
                ));
            }
            None => {
                return Err(
                    self.remote_error(format!("lost the output of {shown}"), plan.failed.clone())
                );
            }
        };
        self.value(stdout, &plan.output, &shown, &plan.failed)
    }

    /// The value in a successful provider's output.
    fn value(
        &self,
        mut bytes: Zeroizing<Vec<u8>>,
        output: &Output,
        shown: &str,
        hint: &str,
    ) -> Result<SecretValue> {
        // One trailing line end, "\n" or "\r\n", as stdin's is.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        match output {
            Output::Whole => {}
            Output::FirstLine => {
                if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                    let end = if end > 0 && bytes[end - 1] == b'\r' {
                        end - 1
                    } else {
                        end
                    };
                    bytes.truncate(end);
                }
            }
            Output::Aws(key) => {
                if bytes.as_slice() == b"None" {
                    return Err(self.remote_error(
                        "the secret has no SecretString (aws printed None); binary secrets are not supported",
                        "store the value as a SecretString",
                    ));
                }
                if let Some(key) = key {
                    bytes = pick_json_key(&bytes, key).map_err(|message| {
                        self.remote_error(
                            format!("SecretString {message}"),
                            "check the key after '#', or drop '#KEY' to use the whole SecretString",
                        )
                    })?;
                }
            }
        }
        if bytes.is_empty() {
            return Err(
                self.remote_error(format!("{shown} printed an empty value"), hint.to_owned())
            );
        }
        if bytes.len() > MAX_VALUE_LEN {
            return Err(self.remote_error(
                format!("{shown} printed more than {MAX_VALUE_LEN} bytes (1 MiB)"),
                hint.to_owned(),
            ));
        }
        if bytes.contains(&0) {
            return Err(self.remote_error(
                format!("the value printed by {shown} contains a NUL byte, which no environment variable can carry"),
                hint.to_owned(),
            ));
        }
        Ok(SecretValue::new(std::mem::take(&mut *bytes)))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.rest)
    }
}

/// What the reader and waiter threads report.
enum Event {
    Exited(io::Result<ExitStatus>),
    /// The bytes, and whether there were more than the cap.
    Stdout(io::Result<(Zeroizing<Vec<u8>>, bool)>),
    Stderr(io::Result<(Zeroizing<Vec<u8>>, bool)>),
}

/// Replaces `{ref}` and `{path}` in `arg`, in one left-to-right pass.
fn substitute(arg: &str, full: &str, path: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix(REF_PLACEHOLDER) {
            out.push_str(full);
            rest = after;
        } else if let Some(after) = tail.strip_prefix(PATH_PLACEHOLDER) {
            out.push_str(path);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The longest a provider may be given.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

fn parse_timeout(name: &str, text: &str) -> Result<Duration> {
    let over_limit = || {
        Error::usage_hint(
            format!(
                "[providers.{name}] timeout \"{}\" is over the limit of 1h",
                super::escape_for_terminal(text)
            ),
            "write it as e.g. timeout = \"10s\"; at most 1h",
        )
    };
    match crate::duration::parse(text) {
        Err(crate::duration::Error::OverMaximum) => Err(over_limit()),
        Ok(d) if d > MAX_TIMEOUT => Err(over_limit()),
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(Error::usage_hint(
            format!("[providers.{name}] timeout must be more than zero"),
            "write it as e.g. timeout = \"10s\"",
        )),
        Err(e) => Err(Error::usage_hint(
            format!(
                "[providers.{name}] timeout \"{}\" is not a duration: {e}",
                super::escape_for_terminal(text)
            ),
            "write it as e.g. timeout = \"10s\", \"500ms\" or \"2m\"",
        )),
    }
}

/// The command as named in messages: the program and its leading plain
/// words (sub-commands such as `op read`), never more than three.
fn shown(argv: &[String]) -> String {
    let words: Vec<&str> = argv
        .iter()
        .take(3)
        .take_while(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        })
        .map(String::as_str)
        .collect();
    if words.is_empty() {
        "the provider".to_owned()
    } else {
        format!("provider `{}`", words.join(" "))
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// "; its stderr: …", cut to [`STDERR_SHOWN`] bytes, control characters
/// other than newline and tab replaced.
fn stderr_note(stderr: Option<&[u8]>) -> String {
    let text = String::from_utf8_lossy(stderr.unwrap_or_default());
    let text = text.trim();
    if text.is_empty() {
        return "; it wrote nothing to stderr".into();
    }
    let mut cut = text.len().min(STDERR_SHOWN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let clean: String = text[..cut]
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let more = if cut < text.len() { " […]" } else { "" };
    format!("; its stderr: {clean}{more}")
}

/// Reads `r` to its end into a wiped buffer of at most `cap` bytes. The
/// flag says there was more: then reading stops, unless `drain`, which
/// reads on and drops the rest (so a chatty writer is not blocked).
fn read_capped(
    mut r: impl Read,
    cap: usize,
    drain: bool,
) -> io::Result<(Zeroizing<Vec<u8>>, bool)> {
    let mut out = Zeroizing::new(Vec::with_capacity(cap.min(4096)));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    let mut over = false;
    loop {
        let n = match r.read(&mut chunk[..]) {
            Ok(0) => return Ok((out, over)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let take = n.min(cap - out.len());
        if out.len() + take > out.capacity() {
            // Grow by hand so the old buffer is wiped, not freed as it is.
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                (out.capacity() * 2).max(out.len() + take).min(cap),
            ));
            bigger.extend_from_slice(&out);
            out = bigger;
        }
        out.extend_from_slice(&chunk[..take]);
        if take < n {
            over = true;
            if !drain {
                return Ok((out, over));
            }
        }
    }
}

/// The value of `key` in the JSON object `json`, as bytes: strings as they
/// are, numbers and booleans as JSON writes them. The error never quotes the
/// JSON (it is the secret).
fn pick_json_key(json: &[u8], key: &str) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let picked = PickKey {
        key,
        keys: Vec::new(),
    }
    .deserialize(&mut de)
    .and_then(|picked| de.end().map(|()| picked))
    .map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "is not a JSON object".to_owned(),
        _ => format!(
            "is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    match picked {
        Picked::Value(bytes) => Ok(bytes),
        Picked::NotScalar(what) => Err(format!(
            "key \"{key}\" holds {what}, not a string, number or boolean"
        )),
        Picked::Missing(keys) => Err(format!(
            "has no key \"{key}\" (its keys: {})",
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        )),
    }
}

enum Picked {
    Value(Zeroizing<Vec<u8>>),
    NotScalar(&'static str),
    Missing(Vec<String>),
}

/// Walks a JSON object, keeping the one value asked for and skipping the
/// others without copying them.
struct PickKey<'k> {
    key: &'k str,
    keys: Vec<String>,
}

impl<'de> DeserializeSeed<'de> for PickKey<'_> {
    type Value = Picked;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Picked, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PickKey<'_> {
    type Value = Picked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<Picked, A::Error> {
        let mut found = None;
        while let Some(name) = map.next_key::<String>()? {
            if found.is_none() && name == self.key {
                found = Some(map.next_value_seed(Scalar)?);
            } else {
                map.next_value::<IgnoredAny>()?;
                if self.keys.len() < 20 {
                    self.keys.push(name);
                }
            }
        }
        Ok(found.unwrap_or(Picked::Missing(self.keys)))
    }
}

/// One JSON value as bytes, if it is a scalar.
struct Scalar;

impl<'de> DeserializeSeed<'de> for Scalar {
    type Value = Picked;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Picked, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar {
    type Value = Picked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Picked, E> {
        Ok(Picked::Value(Zeroizing::new(v.as_bytes().to_vec())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Picked, E> {
        Ok(Picked::Value(Zeroizing::new(v.into_bytes())))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Picked, E> {
        Ok(Picked::Value(Zeroizing::new(v.to_string().into_bytes())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Picked, E> {
        Ok(Picked::Value(Zeroizing::new(v.to_string().into_bytes())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Picked, E> {
        Ok(Picked::Value(Zeroizing::new(v.to_string().into_bytes())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Picked, E> {
        Ok(Picked::Value(Zeroizing::new(v.to_string().into_bytes())))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Picked, E> {
        Ok(Picked::NotScalar("null"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Picked, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Picked::NotScalar("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Picked, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Picked::NotScalar("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(providers: &[(&str, &[&str], Option<&str>)]) -> Config {
        let mut config = Config::default();
        for (name, command, timeout) in providers {
            config.providers.insert(
                (*name).to_owned(),
                ProviderConfig {
                    command: command.iter().map(|s| (*s).to_owned()).collect(),
                    timeout: timeout.map(str::to_owned),
                    ..ProviderConfig::default()
                },
            );
        }
        config
    }

    fn parse(text: &str, config: &Config) -> Option<Result<Reference>> {
        let (scheme, rest) = text.split_once("://").expect("scheme");
        Reference::parse(scheme, rest, config)
    }

    fn argv(text: &str, config: &Config) -> Vec<String> {
        parse(text, config)
            .expect("known scheme")
            .expect("valid")
            .argv(config)
            .expect("argv")
    }

    fn refused(text: &str, config: &Config) -> String {
        match parse(text, config).expect("known scheme") {
            Ok(r) => panic!("{r} was accepted"),
            Err(e) => format!("{e} / {}", e.hint().unwrap_or_default()),
        }
    }

    #[test]
    fn presets_build_their_argv() {
        let c = Config::default();
        assert_eq!(
            argv("op://Dev/Stripe/key", &c),
            ["op", "read", "op://Dev/Stripe/key"]
        );
        assert_eq!(argv("pass://test/api", &c), ["pass", "show", "test/api"]);
        assert_eq!(
            argv("aws-sm://prod/db#password", &c),
            [
                "aws",
                "secretsmanager",
                "get-secret-value",
                "--secret-id",
                "prod/db",
                "--query",
                "SecretString",
                "--output",
                "text"
            ]
        );
        assert_eq!(argv("aws-sm://arn:aws:x", &c)[4], "arn:aws:x");
        assert_eq!(
            argv("gcp-sm://proj/api-key", &c),
            [
                "gcloud",
                "secrets",
                "versions",
                "access",
                "latest",
                "--secret",
                "api-key",
                "--project",
                "proj"
            ]
        );
        assert_eq!(argv("gcp-sm://proj/api-key/7", &c)[4], "7");
        assert!(Reference::parse("nope", "x", &c).is_none());
        assert!(Reference::parse("vault", "x", &c).is_none());
        // The dispatcher asks with an empty rest to learn if a scheme is known.
        assert!(matches!(Reference::parse("op", "", &c), Some(Err(_))));
    }

    #[test]
    fn bad_references_are_refused_before_anything_runs() {
        let c = config(&[("mine", &["prog", "{path}"], None)]);
        for text in [
            "pass://-x",
            "pass://--help",
            "mine://-rf",
            "op://-v",
            "gcp-sm://proj/--flag",
            "gcp-sm://proj/s/-1",
            "gcp-sm://-p/s",
        ] {
            assert!(refused(text, &c).contains('-'), "{text}");
        }
        assert!(refused("pass://a\0b", &c).contains("control character"));
        assert!(refused("pass://a\nb", &c).contains("control character"));
        assert!(refused("pass://", &c).contains("nothing after"));
        assert!(refused("gcp-sm://proj", &c).contains("PROJECT/SECRET"));
        assert!(refused("gcp-sm://p/s/v/x", &c).contains("PROJECT/SECRET"));
        assert!(refused("gcp-sm://p//v", &c).contains("must not be empty"));
        assert!(refused("aws-sm://#k", &c).contains("secret id"));
        assert!(refused("aws-sm://id#", &c).contains("key"));
        // A '-' inside is fine.
        assert_eq!(argv("pass://a/-b", &c)[2], "a/-b");
    }

    #[test]
    fn placeholders_are_replaced_once_whole_or_inside() {
        assert_eq!(substitute("{ref}", "s://a", "a"), "s://a");
        assert_eq!(substitute("--id={path}!", "s://a", "a"), "--id=a!");
        assert_eq!(substitute("{path}{ref}{x}{", "s://p", "p"), "ps://p{x}{");
        // Text that came from the reference is not expanded again.
        assert_eq!(substitute("{path}", "s://{ref}", "{ref}"), "{ref}");
        let c = config(&[("mine", &["/bin/prog", "x{path}y", "{ref}", "fixed"], None)]);
        assert_eq!(
            argv("mine://a b/{path}", &c),
            ["/bin/prog", "xa b/{path}y", "mine://a b/{path}", "fixed"]
        );
    }

    #[test]
    fn configuration_overrides_presets_and_is_checked() {
        let c = config(&[("op", &["my-op", "get", "{path}"], Some("5s"))]);
        assert_eq!(argv("op://v/i/f", &c), ["my-op", "get", "v/i/f"]);
        let plan = parse("op://v/i/f", &c)
            .expect("known")
            .expect("ok")
            .plan(&c)
            .expect("plan");
        assert_eq!(plan.timeout, Duration::from_secs(5));
        assert_eq!(plan.output, Output::Whole);

        // Only tuning a preset keeps its command.
        let mut c = config(&[("pass", &[], Some("1m"))]);
        assert_eq!(argv("pass://x", &c), ["pass", "show", "x"]);
        let r = parse("pass://x", &c).expect("known").expect("ok");
        assert_eq!(r.plan(&c).expect("plan").timeout, Duration::from_secs(60));
        assert_eq!(r.plan(&c).expect("plan").output, Output::FirstLine);
        c.providers.get_mut("pass").expect("pass").first_line = Some(false);
        assert_eq!(r.plan(&c).expect("plan").output, Output::Whole);

        let c = config(&[("bare", &[], None)]);
        assert!(refused("bare://x", &c).contains("no command"));
        let c = config(&[("m", &["{path}", "x"], None)]);
        assert!(refused("m://prog", &c).contains("fixed"));
        let c = config(&[("m", &["p", "{path}"], Some("soon"))]);
        assert!(refused("m://x", &c).contains("not a duration"));
        let c = config(&[("m", &["p", "{path}"], Some("0s"))]);
        assert!(refused("m://x", &c).contains("more than zero"));
    }

    fn value(output: &[u8], how: &Output) -> Result<Vec<u8>> {
        let r = Reference {
            scheme: "t".into(),
            rest: "x".into(),
        };
        r.value(Zeroizing::new(output.to_vec()), how, "provider `t`", "hint")
            .map(|v| v.expose().to_vec())
    }

    #[test]
    fn output_becomes_the_value() {
        assert_eq!(value(b"abc\n", &Output::Whole).expect("v"), b"abc");
        assert_eq!(value(b"abc\n\n", &Output::Whole).expect("v"), b"abc\n");
        assert_eq!(value(b"abc", &Output::Whole).expect("v"), b"abc");
        assert_eq!(
            value(b"\xff\xfe\n", &Output::Whole).expect("v"),
            b"\xff\xfe"
        );
        assert_eq!(
            value(b"pw\nuser: me\n", &Output::FirstLine).expect("v"),
            b"pw"
        );
        assert!(value(b"\n", &Output::Whole).is_err());
        assert!(value(b"\nrest\n", &Output::FirstLine).is_err());
        let nul = value(b"a\0b", &Output::Whole).expect_err("NUL");
        assert!(nul.to_string().contains("NUL"), "{nul}");
        let mut big = vec![b'a'; MAX_VALUE_LEN];
        assert_eq!(
            value(&big, &Output::Whole).expect("1 MiB").len(),
            MAX_VALUE_LEN
        );
        big.push(b'\n');
        assert_eq!(
            value(&big, &Output::Whole).expect("1 MiB + newline").len(),
            MAX_VALUE_LEN
        );
        big.pop();
        big.push(b'a');
        assert!(value(&big, &Output::Whole).is_err());
        assert!(value(b"None\n", &Output::Aws(None)).is_err());
        assert_eq!(value(b"sk-1\n", &Output::Aws(None)).expect("v"), b"sk-1");
        let json = br#"{"user":"u","password":"p\"w","port":5432,"tls":true}"#;
        let key = |k: &str| Output::Aws(Some(k.into()));
        assert_eq!(value(json, &key("password")).expect("v"), b"p\"w");
        assert_eq!(value(json, &key("port")).expect("v"), b"5432");
        assert_eq!(value(json, &key("tls")).expect("v"), b"true");
    }

    #[test]
    fn json_errors_never_quote_the_secret() {
        for (json, expect) in [
            (
                &br#"{"a":"sk-hidden-1","b":2}"#[..],
                "no key \"k\" (its keys: a, b)",
            ),
            (br#""sk-hidden-1""#, "not a JSON object"),
            (br#"{"k":["sk-hidden-1"]}"#, "an array"),
            (br#"{"k":{"x":"sk-hidden-1"}}"#, "an object"),
            (br#"{"k":null,"x":"sk-hidden-1"}"#, "null"),
            (br#"{"k":"sk-hidden-1""#, "not valid JSON"),
            (br#"{"k":"sk-hidden-1"} x"#, "not valid JSON"),
        ] {
            let Err(e) = pick_json_key(json, "k") else {
                panic!("{expect}: accepted")
            };
            assert!(e.contains(expect), "{e}");
            assert!(!e.contains("sk-hidden"), "{e}");
        }
    }

    #[test]
    fn capped_reads_stop_or_drain() {
        let data = vec![7u8; 20_000];
        let (got, over) = read_capped(&data[..], 30_000, false).expect("read");
        assert_eq!((got.len(), over), (20_000, false));
        let (got, over) = read_capped(&data[..], 10_000, false).expect("read");
        assert_eq!((got.len(), over), (10_000, true));
        let (got, over) = read_capped(&data[..], 100, true).expect("read");
        assert_eq!((got.len(), over), (100, true));
    }

    #[test]
    fn stderr_is_cut_and_cleaned() {
        assert_eq!(stderr_note(Some(b"  \n")), "; it wrote nothing to stderr");
        assert_eq!(stderr_note(Some(b"boom\n")), "; its stderr: boom");
        assert_eq!(
            stderr_note(Some(b"a\x1b[31mb")),
            "; its stderr: a\u{fffd}[31mb"
        );
        let long = "é".repeat(400);
        let note = stderr_note(Some(long.as_bytes()));
        assert!(note.ends_with(" […]"), "{note}");
        assert!(note.len() <= STDERR_SHOWN + 30, "{}", note.len());
    }

    fn sh(script: &str, timeout: Option<&str>) -> (Config, Reference) {
        let c = config(&[("t", &["/bin/sh", "-c", script, "sh", "{path}"], timeout)]);
        let r = Reference::parse("t", "the/path", &c)
            .expect("known")
            .expect("ok");
        (c, r)
    }

    #[test]
    fn fetch_runs_the_program_without_a_shell_in_between() {
        let (c, r) = sh(r#"printf 'v-%s\n' "$1""#, None);
        assert_eq!(r.fetch(&c).expect("fetch").expose(), b"v-the/path");
        // stdin is empty, not ours.
        let (c, r) = sh("cat; printf x", None);
        assert_eq!(r.fetch(&c).expect("fetch").expose(), b"x");
    }

    #[test]
    fn fetch_reports_failures() {
        let (c, r) = sh("echo boom >&2; exit 3", None);
        let e = r.fetch(&c).expect_err("fails");
        let text = e.to_string();
        assert!(text.starts_with("t://the/path: "), "{text}");
        assert!(
            text.contains("exit code 3") && text.contains("boom"),
            "{text}"
        );

        let (c, r) = sh("exec sleep 5", Some("100ms"));
        let start = Instant::now();
        let e = r.fetch(&c).expect_err("times out").to_string();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(
            e.contains("timeout of 100ms") && e.contains("killed"),
            "{e}"
        );

        let (c, r) = sh("head -c 1100000 /dev/zero | tr '\\0' a", None);
        let e = r.fetch(&c).expect_err("too big").to_string();
        assert!(e.contains("more than"), "{e}");

        let c = config(&[("t", &["secret-test-no-such-program", "{ref}"], None)]);
        let r = Reference::parse("t", "x", &c).expect("known").expect("ok");
        let e = r.fetch(&c).expect_err("missing");
        assert!(
            e.to_string()
                .contains("\"secret-test-no-such-program\" was not found"),
            "{e}"
        );
        assert!(
            e.hint().unwrap_or_default().contains("[providers.t]"),
            "{e:?}"
        );
    }
}
