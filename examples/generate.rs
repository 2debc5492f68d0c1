//! `cargo run --example generate`: writes `man/` (one page per command) and
//! `completions/` (bash, zsh, fish) from the clap definitions. The
//! generators are dev-dependencies, so the `secret` binary does not carry
//! them; `tests/docs.rs` runs the same function and fails on a stale file.
//!
//! Man pages: clap_mangen renders the name, description and options; the
//! synopsis (with each option's argument) and the EXAMPLES, EXIT STATUS,
//! ENVIRONMENT and FILES sections are written here, per command.
//!
//! Completions: clap_complete's scripts, generated from the command tree
//! without its hidden commands, each with a hand-written front function
//! that completes handle names after `@` (from `secret __complete-handles`,
//! which reads the names the store keeps in the clear: no key, no prompt;
//! never host names) and, after `secret exec … --`, the command and its
//! arguments instead of secret's flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `man/secret.1` and one page per subcommand.
    Man,
    /// bash, zsh and fish completions.
    Completions,
}

impl Kind {
    /// The directory name under the repository root.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Man => "man",
            Kind::Completions => "completions",
        }
    }
}

/// Writes the `kind` files into `dir` (created if missing).
pub fn write(kind: Kind, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    match kind {
        Kind::Man => {
            let mut cmd = secret::docs::command().disable_help_subcommand(true);
            cmd.build();
            man_pages(&cmd, dir)
        }
        Kind::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let (name, text) = completion(shell);
                std::fs::write(dir.join(name), text)?;
            }
            Ok(())
        }
    }
}

#[allow(dead_code)]
fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for kind in [Kind::Man, Kind::Completions] {
        let dir = root.join(kind.dir());
        write(kind, &dir).unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
        println!("wrote {}", dir.display());
    }
}

// ---- Man pages ----

/// One page for `cmd` and each visible subcommand, depth first.
fn man_pages(cmd: &Command, dir: &Path) -> std::io::Result<()> {
    let added = |s: &&Command| s.get_name() == "help";
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && !added(s))
    {
        man_pages(sub, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    page.write_all(synopsis(cmd).as_bytes())?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    let path = cmd.get_bin_name().unwrap_or(cmd.get_name());
    page.write_all(sections(path).as_bytes())?;
    man.render_version_section(&mut page)?;
    std::fs::write(dir.join(man.get_filename()), page)
}

/// Text for roff: backslashes and hyphens escaped, no line read as a
/// request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// SYNOPSIS with every option's argument: `[--env VAR=REF]...`. The
/// global options go where they are usually written, before the
/// subcommand: `secret [--scope SCOPE] exec [--env VAR=REF]...`.
fn synopsis(cmd: &Command) -> String {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let (program, path) = name
        .split_once(' ')
        .map_or((name, None), |(program, path)| (program, Some(path)));
    let options = |global: bool| {
        cmd.get_arguments()
            .filter(move |a| !a.is_hide_set() && !a.is_positional())
            .filter(move |a| path.is_none() || a.is_global_set() == global)
            .filter_map(synopsis_option)
    };
    let mut parts = vec![format!("\\fB{}\\fR", roff(program))];
    if let Some(path) = path {
        parts.extend(options(true));
        parts.push(format!("\\fB{}\\fR", roff(path)));
    }
    parts.extend(options(false));
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let value = arg
            .get_value_names()
            .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.join(" "));
        let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        let text = format!("\\fI{}\\fR{}", roff(&value), if many { "..." } else { "" });
        // The command of `exec` follows `--`.
        let text = if arg.is_last_set()
            || arg.is_trailing_var_arg_set() && arg.is_allow_hyphen_values_set()
        {
            format!("\\fB\\-\\-\\fR {text}")
        } else {
            text
        };
        parts.push(if arg.is_required_set() {
            text
        } else {
            format!("[{text}]")
        });
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        parts.push("\\fICOMMAND\\fR".into());
    }
    format!(".SH SYNOPSIS\n{}\n", parts.join(" "))
}

/// One option as SYNOPSIS shows it: `[-e|--env VAR=REF]...`.
fn synopsis_option(arg: &clap::Arg) -> Option<String> {
    let mut flag = match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB\\-\\-{}\\fR", roff(l)),
        (Some(s), None) => format!("\\fB\\-{s}\\fR"),
        (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff(l)),
        (None, None) => return None,
    };
    if arg.get_action().takes_values() {
        let value = arg
            .get_value_names()
            .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.join(" "));
        flag.push_str(&format!(" \\fI{}\\fR", roff(&value)));
    }
    let many = matches!(arg.get_action(), clap::ArgAction::Append);
    Some(format!("[{flag}]{}", if many { "..." } else { "" }))
}

/// What one page says beyond the clap definitions.
#[derive(Default)]
struct Extra {
    /// (what it does, the command line).
    examples: &'static [(&'static str, &'static str)],
    /// (code, meaning).
    exit: &'static [(&'static str, &'static str)],
    /// Variables this command reads beyond those every command reads.
    env: &'static [&'static str],
    /// Files this command reads or writes beyond config.toml.
    files: &'static [&'static str],
}

const EXIT_PLAIN: &[(&str, &str)] = &[
    ("0", "success"),
    (
        "1",
        "the command failed (wrong passphrase, missing secret, damaged store, …)",
    ),
    (
        "2",
        "usage error: a bad flag, handle or file; nothing was changed",
    ),
];

const EXIT_LAUNCH: &[(&str, &str)] = &[
    ("N", "the command exited with N"),
    (
        "128+N",
        "the command was killed by signal N: secret then dies of N itself, so a shell shows 128+N (as PID 1 it exits 128+N)",
    ),
    (
        "125",
        "secret itself failed (bad arguments, locked vault, a missing or denied secret): the command did not run",
    ),
    ("126", "the command was found but could not be executed"),
    ("127", "the command was not found"),
];

/// The files of a command that changes the store.
const CHANGES_THE_STORE: &[&str] = &["vault.secret", "keychain.json", "audit.jsonl", "store.lock"];

/// The sections of the page for `path` ("secret", "secret exec", …).
fn extra(path: &str) -> Extra {
    let sub = path.strip_prefix("secret").unwrap_or(path).trim();
    match sub {
        "" => Extra {
            examples: &[
                (
                    "Create a file vault (asks for a passphrase twice)",
                    "secret init",
                ),
                (
                    "Store a key from standard input",
                    "printenv OPENAI_API_KEY | secret add @openai_api_key --stdin",
                ),
                (
                    "Run a program with the key in its environment only",
                    "secret exec --env OPENAI_API_KEY=@openai_api_key -- python agent.py",
                ),
                ("List what is stored: metadata, never values", "secret list"),
                ("Skip the passphrase for a while", "secret unlock --for 15m"),
            ],
            exit: EXIT_PLAIN,
            env: &["SECRET_NEW_PASSPHRASE", "CI", "XDG_RUNTIME_DIR"],
            files: &[
                "grants.toml",
                "vault.secret",
                "keychain.json",
                "audit.jsonl",
                "store.lock",
                "vault.generation",
                "plugins.toml",
                "broker.toml",
                "runtime",
            ],
        },
        "init" => Extra {
            examples: &[
                (
                    "A file vault; the passphrase is typed twice (at least 8 characters)",
                    "secret init",
                ),
                (
                    "The OS keychain instead of a passphrase",
                    "secret init --backend keychain",
                ),
                (
                    "A throwaway store for a demo, in a subshell",
                    "( export SECRET_HOME=\"$(mktemp -d)/secret\"; secret init )",
                ),
            ],
            exit: EXIT_PLAIN,
            env: &["SECRET_BACKEND"],
            files: &[
                "grants.toml",
                "vault.secret",
                "keychain.json",
                "audit.jsonl",
            ],
        },
        "add" => Extra {
            examples: &[
                (
                    "Type the value at a prompt that does not echo",
                    "secret add @openai_api_key",
                ),
                (
                    "Pipe it in, with what it is",
                    "printenv OPENAI_API_KEY | secret add @openai_api_key --stdin --provider openai --kind api_key",
                ),
            ],
            exit: EXIT_PLAIN,
            files: CHANGES_THE_STORE,
            ..Extra::default()
        },
        "rotate" => Extra {
            examples: &[(
                "Replace the value; running processes keep the old one",
                "secret rotate @openai_api_key --stdin < new-key.txt",
            )],
            exit: EXIT_PLAIN,
            files: CHANGES_THE_STORE,
            ..Extra::default()
        },
        "rm" => Extra {
            examples: &[("Remove a secret", "secret rm @openai_api_key")],
            exit: EXIT_PLAIN,
            files: CHANGES_THE_STORE,
            ..Extra::default()
        },
        "list" => Extra {
            examples: &[
                ("A table of handles and their metadata", "secret list"),
                ("The same as JSON, for scripts", "secret list --json"),
            ],
            exit: EXIT_PLAIN,
            files: &["vault.secret", "keychain.json"],
            ..Extra::default()
        },
        "inspect" => Extra {
            examples: &[(
                "Which entry answers in a scope, and where a link points",
                "secret --scope team-a inspect @db --json",
            )],
            exit: EXIT_PLAIN,
            files: &["vault.secret", "keychain.json"],
            ..Extra::default()
        },
        "link" => Extra {
            examples: &[(
                "Keep using @openai_api_key while the value lives in OpenBao",
                "secret link @openai_api_key vault://secret/openai#api_key",
            )],
            exit: EXIT_PLAIN,
            files: &["vault.secret", "keychain.json", "audit.jsonl"],
            ..Extra::default()
        },
        "grants" | "grants check" => Extra {
            examples: &[(
                "May the deployer have @prod/db for a deploy, and which line says so",
                "secret grants check @prod/db --consumer deployer --purpose deploy",
            )],
            exit: &[
                ("0", "allowed"),
                ("1", "denied (the grant that would allow it is printed)"),
                ("2", "usage error, or grants.toml is invalid"),
            ],
            files: &["grants.toml"],
            ..Extra::default()
        },
        "audit" => Extra {
            examples: &[
                (
                    "The trail, one line per event, with a header row",
                    "secret audit",
                ),
                ("One handle's events", "secret audit @openai_api_key"),
                (
                    "Check the hash chain and the keyed anchor",
                    "secret audit --verify",
                ),
            ],
            exit: &[
                ("0", "shown, or verified"),
                (
                    "1",
                    "the trail fails its check (the first bad line is named)",
                ),
                ("2", "usage error"),
            ],
            files: &["audit.jsonl", "vault.secret"],
            ..Extra::default()
        },
        "passwd" => Extra {
            examples: &[
                (
                    "Type the old passphrase, then the new one twice",
                    "secret passwd",
                ),
                (
                    "From descriptors, for scripts",
                    "secret --passphrase-fd 3 passwd --new-passphrase-fd 4 3<old 4<new",
                ),
            ],
            exit: EXIT_PLAIN,
            env: &["SECRET_NEW_PASSPHRASE"],
            files: &["vault.secret", "audit.jsonl", "store.lock"],
        },
        "unlock" => Extra {
            examples: &[(
                "Launches skip the passphrase for two hours",
                "secret unlock --for 2h",
            )],
            exit: EXIT_PLAIN,
            files: &["vault.secret", "audit.jsonl"],
            ..Extra::default()
        },
        "lock" => Extra {
            examples: &[("Drop the cached key now", "secret lock")],
            exit: EXIT_PLAIN,
            files: &["vault.secret", "audit.jsonl"],
            ..Extra::default()
        },
        "import" => Extra {
            examples: &[
                (
                    "See what would be stored, without storing anything",
                    "secret import .env --dry-run",
                ),
                (
                    "Store each value as @app/<name> and write the references-only file",
                    "secret import .env --prefix app --out app.env && shred -u .env",
                ),
            ],
            exit: EXIT_PLAIN,
            files: CHANGES_THE_STORE,
            ..Extra::default()
        },
        "check" => Extra {
            examples: &[
                (
                    "Does everything app.env names resolve, grants included?",
                    "secret check --env-file app.env",
                ),
                (
                    "The same check for a script's header, without running it",
                    "secret run --check bash ./deploy.sh",
                ),
            ],
            exit: &[
                ("0", "every reference resolves and is granted"),
                ("1", "a reference is missing, denied or its provider failed"),
                ("2", "usage error: a bad flag, mapping or file"),
            ],
            env: &["CI"],
            files: &[
                "grants.toml",
                "vault.secret",
                "keychain.json",
                "audit.jsonl",
            ],
        },
        "reveal" => Extra {
            examples: &[
                (
                    "Show one value on this terminal",
                    "secret reveal @db_password",
                ),
                (
                    "Into a pipe, knowingly (it is audited as a reveal)",
                    "secret reveal @db_password --force | wc -c",
                ),
            ],
            exit: EXIT_PLAIN,
            files: &[
                "grants.toml",
                "vault.secret",
                "keychain.json",
                "audit.jsonl",
            ],
            ..Extra::default()
        },
        "exec" => Extra {
            examples: &[
                (
                    "A key in one program's environment",
                    "secret exec --env OPENAI_API_KEY=@openai_api_key -- python agent.py",
                ),
                (
                    "A value inside a larger string",
                    "secret exec --env 'DATABASE_URL=postgres://app:{{@db_password}}@db/app' -- ./migrate",
                ),
                (
                    "References from a file that is safe to commit",
                    "secret exec --env-file app.env -- ./serve",
                ),
                (
                    "An in-memory file for tools that want a path",
                    "secret exec --file GOOGLE_APPLICATION_CREDENTIALS=@gcp_sa_json -- gcloud auth list",
                ),
                (
                    "A clean environment: PATH, the locale and the key",
                    "secret exec -i --keep PATH --keep 'LC_*' -e OPENAI_API_KEY=@openai_api_key -- python agent.py",
                ),
                (
                    "The child holds a placeholder; the value goes only to the granted hosts",
                    "secret exec --proxy OPENAI_API_KEY=@openai_api_key -- python agent.py",
                ),
            ],
            exit: EXIT_LAUNCH,
            env: &["CI"],
            files: &[
                "grants.toml",
                "vault.secret",
                "keychain.json",
                "audit.jsonl",
                "runtime",
            ],
        },
        "run" => Extra {
            examples: &[
                (
                    "A script whose header names its secrets: start it with",
                    "#!/usr/bin/env -S secret run bash",
                ),
                (
                    "and declare, in the comment block under it",
                    "# secret: OPENAI_API_KEY=@openai_api_key",
                ),
                (
                    "Or run it explicitly",
                    "secret run bash ./deploy.sh --dry-run",
                ),
            ],
            exit: EXIT_LAUNCH,
            env: &["CI"],
            files: &[
                "grants.toml",
                "vault.secret",
                "keychain.json",
                "audit.jsonl",
            ],
        },
        "plugins" | "plugins run" | "plugins check" | "plugins status" => Extra {
            examples: &[
                (
                    "Validate plugins.toml and show each plugin's variables",
                    "secret plugins check",
                ),
                (
                    "Start and supervise every enabled plugin",
                    "secret plugins run",
                ),
                ("Ask the running supervisor", "secret plugins status --json"),
            ],
            exit: &[
                (
                    "0",
                    "a requested shutdown; for check, valid and every secret resolves; for status, a supervisor answered",
                ),
                (
                    "1",
                    "a plugin failed with nothing left running; a secret does not resolve or is denied; no supervisor runs FILE",
                ),
                (
                    "2",
                    "the file is invalid (every problem listed as FILE:LINE:COL); nothing started",
                ),
                ("128+N", "run was forced down by a second signal N"),
            ],
            env: &["XDG_RUNTIME_DIR"],
            files: &[
                "plugins.toml",
                "grants.toml",
                "vault.secret",
                "audit.jsonl",
                "runtime",
            ],
        },
        _ if sub.starts_with("broker") => Extra {
            examples: &[
                (
                    "Validate broker.toml and show what each route does",
                    "secret broker check",
                ),
                (
                    "Serve the routes (SIGHUP reloads, SIGTERM drains)",
                    "secret broker run &",
                ),
                (
                    "Point an SDK at the broker with the caller token",
                    "OPENAI_BASE_URL=http://127.0.0.1:18443/proxy/openai/v1 OPENAI_API_KEY=$(secret broker token) python agent.py",
                ),
                (
                    "Requests, bytes and rate limits so far",
                    "secret broker status",
                ),
            ],
            exit: &[
                (
                    "0",
                    "run: drained after SIGTERM or SIGINT; check: valid and every secret resolves; status: a broker answered",
                ),
                (
                    "1",
                    "a secret does not resolve or is denied; no broker runs FILE",
                ),
                (
                    "2",
                    "the file is invalid (every problem listed as FILE:LINE:COL)",
                ),
            ],
            env: &["XDG_RUNTIME_DIR"],
            files: &[
                "broker.toml",
                "broker.token",
                "grants.toml",
                "vault.secret",
                "audit.jsonl",
                "runtime",
            ],
        },
        _ => Extra {
            exit: EXIT_PLAIN,
            ..Extra::default()
        },
    }
}

/// Every variable a page may list: (name, what it does).
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SECRET_HOME",
        "Keep everything (configuration, store, audit trail) in this one directory.",
    ),
    (
        "XDG_CONFIG_HOME",
        "Without SECRET_HOME, configuration goes to $XDG_CONFIG_HOME/secret (default ~/.config/secret).",
    ),
    (
        "XDG_DATA_HOME",
        "Without SECRET_HOME, the store and audit trail go to $XDG_DATA_HOME/secret (default ~/.local/share/secret).",
    ),
    (
        "HOME",
        "The base of the defaults above. A launch that resolves no handle needs none of them.",
    ),
    (
        "SECRET_AUDIT",
        "The audit trail file (an absolute path; audit.head goes beside it), instead of audit.jsonl in the data directory: lets a read-only SECRET_HOME (a container image) launch.",
    ),
    (
        "SECRET_BACKEND",
        "file or keychain: the store in force, over config.toml.",
    ),
    (
        "SECRET_PASSPHRASE",
        "The vault passphrase, after --passphrase-fd and before the terminal prompt. For CI, prefer --passphrase-fd: a variable is inherited by everything the job starts (though never by secret's own children).",
    ),
    (
        "SECRET_NEW_PASSPHRASE",
        "The new passphrase for passwd, after --new-passphrase-fd.",
    ),
    ("SECRET_SCOPE", "The same as --scope."),
    (
        "CI",
        "When set to a true value, exec and run mask secrets in the child's output by default.",
    ),
    (
        "XDG_RUNTIME_DIR",
        "The plugin supervisor's and the broker's sockets go to $XDG_RUNTIME_DIR/secret (else run/ in the data directory).",
    ),
];

/// Variables every command reads.
const ENV_ALWAYS: &[&str] = &[
    "SECRET_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "HOME",
    "SECRET_AUDIT",
    "SECRET_BACKEND",
    "SECRET_PASSPHRASE",
    "SECRET_SCOPE",
];

/// Every file a page may list: (key, where, what).
const FILES: &[(&str, &str, &str)] = &[
    (
        "config.toml",
        "CONFIG/config.toml",
        "The backend init chose, command providers, [proxy] settings.",
    ),
    (
        "grants.toml",
        "CONFIG/grants.toml",
        "Which consumer may have which secret (init writes one grant: consumer exec, every handle).",
    ),
    (
        "vault.generation",
        "CONFIG/vault.generation",
        "The highest vault generation seen, to notice a vault rolled back to an older copy.",
    ),
    (
        "plugins.toml",
        "CONFIG/plugins.toml",
        "The plugins secret plugins supervises (or FILE).",
    ),
    (
        "broker.toml",
        "CONFIG/broker.toml",
        "The broker's routes (or FILE).",
    ),
    (
        "broker.token",
        "beside broker.toml",
        "The caller token (mode 0600).",
    ),
    (
        "vault.secret",
        "DATA/vault.secret",
        "The encrypted file vault.",
    ),
    (
        "keychain.json",
        "DATA/keychain.json",
        "The keychain backend's metadata (values are in the OS keychain).",
    ),
    (
        "audit.jsonl",
        "DATA/audit.jsonl, or $SECRET_AUDIT",
        "The hash-chained audit trail, and audit.head beside it.",
    ),
    (
        "store.lock",
        "DATA/store.lock",
        "Held by every command that changes the store.",
    ),
    (
        "runtime",
        "$XDG_RUNTIME_DIR/secret, else DATA/run",
        "The supervisor's and the broker's sockets (0600, in a 0700 directory).",
    ),
];

/// EXAMPLES, EXIT STATUS, ENVIRONMENT and FILES for the page of `path`.
fn sections(path: &str) -> String {
    let extra = extra(path);
    let mut out = String::new();
    if !extra.examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (what, line) in extra.examples {
            out.push_str(&format!(".TP\n{}\n\\fB{}\\fR\n", roff(what), roff(line)));
        }
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in extra.exit {
        out.push_str(&format!(".TP\n.B {code}\n{}\n", roff(meaning)));
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (name, what) in ENVIRONMENT {
        if ENV_ALWAYS.contains(name) || extra.env.contains(name) {
            out.push_str(&format!(".TP\n.B {name}\n{}\n", roff(what)));
        }
    }
    out.push_str(".SH FILES\n");
    out.push_str(&roff(
        "CONFIG is $SECRET_HOME, else $XDG_CONFIG_HOME/secret (~/.config/secret); DATA is $SECRET_HOME, else $XDG_DATA_HOME/secret (~/.local/share/secret). Directories are 0700 and files 0600; secret refuses looser ones and names the chmod that fixes them.\n",
    ));
    out.push('\n');
    for (key, place, what) in FILES {
        if *key == "config.toml" || extra.files.contains(key) {
            out.push_str(&format!(".TP\n.I {}\n{}\n", roff(place), roff(what)));
        }
    }
    out
}

// ---- Completions ----

/// The file name and text of `shell`'s completion script.
fn completion(shell: Shell) -> (&'static str, String) {
    // Built first: the subcommands' arguments are deferred until then.
    let mut full = secret::docs::command();
    full.build();
    let mut cmd = visible(&full, true);
    let mut generated = Vec::new();
    clap_complete::generate(shell, &mut cmd, "secret", &mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 completions");
    let takes_value = run_value_options(&full);
    match shell {
        Shell::Bash => ("secret.bash", bash(&generated, &takes_value)),
        Shell::Zsh => ("_secret", zsh(&generated, &takes_value)),
        Shell::Fish => ("secret.fish", fish(&generated, &takes_value)),
        _ => unreachable!("only bash, zsh and fish are generated"),
    }
}

/// `cmd` without its hidden subcommands (clap has no way to remove one,
/// and clap_complete offers hidden ones in places): rebuilt from the
/// parts completion uses.
///
/// `cmd` is built (its deferred arguments are there): the arguments the
/// build added (help and version, in subcommands the global ones and the
/// version, the help subcommand) are left out, for `generate`'s own build to add again in
/// their usual places.
fn visible(cmd: &Command, root: bool) -> Command {
    fn leak(text: &str) -> &'static str {
        Box::leak(text.to_owned().into_boxed_str())
    }
    let own = cmd.get_arguments().filter(|a| {
        !matches!(a.get_id().as_str(), "help" | "version") && (root || !a.is_global_set())
    });
    let mut out = Command::new(leak(cmd.get_name()))
        .subcommand_required(cmd.is_subcommand_required_set())
        .args(own.cloned());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version().filter(|_| root) {
        out = out.version(leak(version));
    }
    let added = |s: &&Command| s.get_name() == "help";
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && !added(s))
    {
        out = out.subcommand(visible(sub, false));
    }
    out
}

/// Replaces the one definition `from` with `to`; panics when the generator
/// changed its output and the template no longer fits.
fn rename(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "clap_complete's output changed: {from:?} is not there exactly once"
    );
    text.replacen(from, to, 1)
}

/// The options of `secret run` (its own and the global ones) that take a
/// value, as `--long` and `-s`: the completion scripts skip them and their
/// value to find INTERPRETER, the first other word after `run`.
fn run_value_options(built: &clap::Command) -> Vec<String> {
    let run = built
        .find_subcommand("run")
        .expect("secret has a run subcommand");
    let mut out: Vec<String> = run
        .get_arguments()
        .chain(built.get_arguments())
        .filter(|a| !a.is_positional() && a.get_action().takes_values())
        .flat_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|s| format!("-{s}"));
            long.into_iter().chain(short)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn bash(generated: &str, run_value_options: &[String]) -> String {
    let text = rename(generated, "_secret() {\n", "_secret_clap() {\n");
    let text = text.replace("complete -F _secret ", "complete -F _secret_complete ");
    let front = BASH_FRONT.replace("RUN_VALUE_OPTIONS", &run_value_options.join("|"));
    format!("{text}{front}")
}

fn zsh(generated: &str, run_value_options: &[String]) -> String {
    let text = rename(generated, "\n_secret() {\n", "\n_secret_clap() {\n");
    let front = ZSH_FRONT.replace("RUN_VALUE_OPTIONS", &run_value_options.join("|"));
    rename(
        &text,
        "if [ \"$funcstack[1]\" = \"_secret\" ]; then",
        &format!("{front}\nif [ \"$funcstack[1]\" = \"_secret\" ]; then"),
    )
}

fn fish(generated: &str, run_value_options: &[String]) -> String {
    // After `exec … --`, and after `run INTERPRETER`, the words belong to
    // the command: none of secret's own completions apply there.
    let text = generated
        .replace(
            "-n \"__fish_secret_using_subcommand exec\"",
            "-n \"__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash\"",
        )
        .replace(
            "-n \"__fish_secret_using_subcommand run\"",
            "-n \"__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null\"",
        );
    let front = FISH_FRONT.replace("RUN_VALUE_OPTIONS", &run_value_options.join(" "));
    format!("{text}{front}")
}

const BASH_FRONT: &str = r#"
# Added by examples/generate.rs around clap's _secret_clap:
# - a word with @ completes handle names, from `secret __complete-handles`
#   (the names the store keeps in the clear: no key, no prompt), and never
#   falls back to bash's host-name or file completion;
# - after `secret exec ... --`, the command, then its own arguments;
# - after `secret run [OPTIONS]`, the interpreter, then its own arguments
#   (the script first).
_secret_complete() {
    # What readline replaces with each reply: $2, not the last of
    # COMP_WORDS. For K=@name COMP_WORDS ends in "=@" "name", but readline
    # keeps the @ (a prefix it passes on) and replaces "@name".
    local cur=$2
    local i sub=
    # The subcommand: the first word that is neither a global option nor
    # the value of one (`secret --scope prod exec -- …`).
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case ${COMP_WORDS[i]} in
            --passphrase-fd|--scope) (( i++ )) ;;
            -*) ;;
            *) sub=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ $sub == run ]]; then
        # INTERPRETER: the first word after run that is neither an option
        # nor the value of one. COMP_WORDS splits words at =, so a lone =
        # and the word after it continue the word before.
        for (( i = i + 1; i < COMP_CWORD; i++ )); do
            case ${COMP_WORDS[i]} in
                =) (( i++ )) ;;
                RUN_VALUE_OPTIONS) (( i++ )); [[ ${COMP_WORDS[i]} == = ]] && (( i++ )) ;;
                -*) ;;
                *) break ;;
            esac
        done
        if (( i < COMP_CWORD )) || [[ $cur != -* ]]; then
            _secret_command_at "$i" "$cur"
            return 0
        fi
    fi
    for (( i = i + 1; i < COMP_CWORD; i++ )); do
        if [[ ${COMP_WORDS[i]} == -- && $sub == exec ]]; then
            _secret_command_at $(( i + 1 )) "$cur"
            return 0
        fi
    done
    # The word as typed, of which readline replaces the tail, cur.
    local line=${COMP_LINE:0:COMP_POINT}
    local word=${line##*[[:space:]]}
    if [[ $word == *@* ]]; then
        compopt +o default +o bashdefault 2>/dev/null
        local before=${word%@*} typed=${word##*@} name
        local cut=$(( ${#word} > ${#cur} ? ${#word} - ${#cur} : 0 ))
        COMPREPLY=()
        while IFS= read -r name; do
            if [[ $name == "@$typed"* ]]; then
                name="$before$name"
                COMPREPLY+=( "${name:cut}" )
            fi
        done < <(command secret __complete-handles 2>/dev/null)
        return 0
    fi
    _secret_clap "$@"
}

# Completes the words from COMP_WORDS[$1] on as a command line of their
# own: the command's name, then what that command completes.
_secret_command_at() {
    if declare -F _command_offset >/dev/null; then
        _command_offset "$1"  # bash-completion: the command's own
    elif (( $1 == COMP_CWORD )); then
        # Once each: /bin and /usr/bin may be one directory twice.
        local name
        COMPREPLY=()
        while IFS= read -r name; do
            COMPREPLY+=( "$name" )
        done < <(compgen -c -- "$2" | LC_ALL=C sort -u)
    else
        COMPREPLY=()  # -o default: readline's own file names
    fi
}
"#;

const ZSH_FRONT: &str = r#"# Added by examples/generate.rs around clap's _secret_clap:
# - a word with @ completes handle names, from `secret __complete-handles`
#   (the names the store keeps in the clear: no key, no prompt);
# - after `secret exec ... --`, the command, then its own arguments;
# - after `secret run [OPTIONS]`, the interpreter, then its own arguments.
_secret() {
    local i
    if [[ ${words[2]} == run ]]; then
        # INTERPRETER: the first word after run that is neither an option
        # nor the value of one.
        for (( i = 3; i < CURRENT; i++ )); do
            case ${words[i]} in
                (RUN_VALUE_OPTIONS) (( i++ )) ;;
                (-*) ;;
                (*) break ;;
            esac
        done
        if (( i < CURRENT )) || [[ $PREFIX != -* ]]; then
            shift $(( i - 1 )) words
            (( CURRENT -= i - 1 ))
            _normal
            return
        fi
    fi
    for (( i = 3; i < CURRENT; i++ )); do
        if [[ ${words[i]} == -- && ${words[2]} == exec ]]; then
            shift $i words
            (( CURRENT -= i ))
            _normal
            return
        fi
    done
    if [[ $PREFIX == *@* ]]; then
        local -a names
        names=( ${(f)"$(command secret __complete-handles 2>/dev/null)"} )
        compset -P '*@'
        compadd -- ${names#@}
        return
    fi
    _secret_clap "$@"
}
"#;

const FISH_FRONT: &str = r#"
# Added by examples/generate.rs:
# - a token with @ completes handle names, from `secret __complete-handles`
#   (the names the store keeps in the clear: no key, no prompt);
# - after `secret exec ... --`, the command, then its own arguments;
# - after `secret run [OPTIONS]`, the interpreter, then its own arguments.
function __fish_secret_after_dashdash
    set -l words (commandline -opc)
    test "$words[2]" = exec; and contains -- -- $words
end

function __fish_secret_command
    set -l words (commandline -opc) (commandline -ct)
    set -l at (contains -i -- -- $words)
    __fish_complete_subcommand --commandline $words[(math $at + 1)..-1]
end

function __fish_secret_handles
    set -l token (commandline -ct)
    set -l before (string replace -r '@[^@]*$' '' -- $token)
    for name in (command secret __complete-handles 2>/dev/null)
        echo $before$name
    end
end

# For `secret run`: prints the position of INTERPRETER among the words
# typed (the first after run that is neither an option nor the value of
# one), the word being typed included unless it starts with -; fails when
# there is none yet.
function __fish_secret_run_command_at
    set -l words (commandline -opc)
    test "$words[2]" = run; or return 1
    set -l takes_value RUN_VALUE_OPTIONS
    set -l i 3
    while test $i -le (count $words)
        if contains -- $words[$i] $takes_value
            set i (math $i + 2)
        else if string match -q -- '-*' $words[$i]
            set i (math $i + 1)
        else
            echo $i
            return 0
        end
    end
    string match -q -- '-*' (commandline -ct); and return 1
    echo $i
end

function __fish_secret_run_command
    set -l at (__fish_secret_run_command_at)
    set -l words (commandline -opc) (commandline -ct)
    __fish_complete_subcommand --commandline $words[$at..-1]
end

complete -c secret -n '__fish_secret_after_dashdash' -f -a '(__fish_secret_command)'
complete -c secret -n '__fish_secret_run_command_at >/dev/null' -f -a '(__fish_secret_run_command)'
complete -c secret -n 'not __fish_secret_after_dashdash; and string match -q -- "*@*" (commandline -ct)' -f -a '(__fish_secret_handles)'
complete -c secret -n 'not __fish_secret_after_dashdash; and string match -q -- "*@*" (commandline -ct)' -s e -l env -l file -l proxy -r -f -a '(__fish_secret_handles)'
"#;
