//! The committed man pages and completions are what the clap definitions
//! generate today (the generator is `examples/generate.rs`, shared here so
//! the test and the files cannot disagree on how they are made).

use std::path::Path;

#[path = "../examples/generate.rs"]
#[allow(dead_code, unreachable_pub)]
mod generate;

use generate::Kind;

fn compare(kind: Kind) {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind.dir());
    let scratch = tempfile::tempdir().unwrap();
    let fresh = scratch.path().join(kind.dir());
    generate::write(kind, &fresh).unwrap();
    let list = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    };
    let names = list(&fresh);
    assert_eq!(
        names,
        list(&committed),
        "{}/ lists other files than are generated: run `cargo run --example generate`",
        kind.dir()
    );
    for name in names {
        let want = std::fs::read(fresh.join(&name)).unwrap();
        let have = std::fs::read(committed.join(&name)).unwrap();
        assert!(
            want == have,
            "{}/{} is stale: run `cargo run --example generate`",
            kind.dir(),
            name.to_string_lossy()
        );
    }
}

#[test]
fn man_pages_are_current() {
    compare(Kind::Man);
}

#[test]
fn completions_are_current() {
    compare(Kind::Completions);
}

// ---- What the man pages and --help say ----

fn man_page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("man")
        .join(format!("{name}.1"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Issue 13, item 4: every page has EXIT STATUS, ENVIRONMENT and FILES,
/// the pages of commands people run have EXAMPLES, and synopses show each
/// option's argument.
#[test]
fn man_pages_carry_examples_exit_status_environment_and_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let page = std::fs::read_to_string(entry.path()).unwrap();
        for section in [
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
        ] {
            assert!(page.contains(section), "{name} lacks {section}");
        }
        assert!(
            page.contains("SECRET_HOME"),
            "{name}: ENVIRONMENT lacks SECRET_HOME"
        );
        // The global options come before the subcommand, as they are
        // usually typed, and only there.
        let synopsis = page
            .split(".SH SYNOPSIS\n")
            .nth(1)
            .and_then(|s| s.lines().next())
            .unwrap_or_default();
        let scope = synopsis.find("\\fB\\-\\-scope\\fR").expect(&name);
        assert_eq!(
            synopsis.matches("\\-\\-scope").count(),
            1,
            "{name}: {synopsis}"
        );
        let words = name.strip_suffix(".1").unwrap_or(&name).replace('-', " ");
        if let Some((_, sub)) = words.split_once(' ') {
            let at = synopsis.find(&format!("\\fB{sub}\\fR")).expect(&name);
            assert!(scope < at, "{name}: {synopsis}");
        }
    }
    for name in [
        "secret",
        "secret-init",
        "secret-add",
        "secret-exec",
        "secret-run",
        "secret-audit",
    ] {
        assert!(
            man_page(name).contains(".SH EXAMPLES"),
            "{name} lacks EXAMPLES"
        );
    }
    let exec = man_page("secret-exec");
    assert!(
        exec.contains(r"[\fB\-e\fR|\fB\-\-env\fR \fIVAR=REF\fR]..."),
        "{exec}"
    );
    assert!(exec.contains(r"\fB\-\-\fR \fICOMMAND\fR"), "{exec}");
    for code in ["125", "126", "127", "128+N"] {
        assert!(
            exec.contains(&format!(".B {code}\n")),
            "secret-exec.1 lacks exit {code}"
        );
    }
    assert!(man_page("secret-init").contains(r"[\fB\-\-backend\fR \fIBACKEND\fR]"));
    assert!(man_page("secret").contains("SECRET_AUDIT"));
    // Hidden commands have no page.
    assert!(!dir.join("secret-plugins-keeper.1").exists());
    assert!(!dir.join("secret-__complete-handles.1").exists());
}

/// Issue 13, item 4: `--help` sets the global options apart and shows no
/// empty default.
#[test]
fn help_groups_global_options_and_shows_no_empty_default() {
    let env = crate::util::Env::new();
    for command in [
        vec!["--help"],
        vec!["add", "--help"],
        vec!["exec", "--help"],
        vec!["init", "--help"],
        vec!["grants", "check", "--help"],
        vec!["plugins", "run", "--help"],
    ] {
        let out = env.secret(&command).run();
        out.success();
        let help = out.stdout();
        // Nor an empty value for an unset variable ([env: SECRET_SCOPE=]).
        assert!(
            !help.contains("[default: ]")
                && !help.contains("[default: \"\"]")
                && !help.contains("=]"),
            "{command:?}:\n{help}"
        );
        let global = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{command:?}:\n{help}"));
        let own = help.find("      --passphrase-fd <N>").unwrap();
        assert!(
            own > global,
            "{command:?}: --passphrase-fd is not under Global options:\n{help}"
        );
    }
}

// ---- Completions, asked of the real shells ----

use crate::util::{Env, tools_present, wait_for};

/// A store with three handles, and a shell environment that finds this
/// build's `secret` and the store, with no passphrase anywhere: completion
/// must never need one.
fn completion_world() -> Env {
    let env = Env::with_vault();
    for h in ["@openai_api_key", "@prod/db_password", "@github_token"] {
        env.add(h, b"sk-completion-value-1234");
    }
    // A script for `secret run bash agen<TAB>` (the shells run in root).
    std::fs::write(env.root().join("agent.sh"), "#!/bin/sh\n").unwrap();
    env
}

fn shell(env: &Env, program: &str) -> std::process::Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_secret")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", env.root())
        .env("SECRET_HOME", env.home())
        .env("TERM", "dumb")
        .current_dir(env.root())
        .stdin(std::process::Stdio::null());
    cmd
}

/// A shell's standard output, once it exited 0.
#[track_caller]
fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("completions")
        .join(name)
        .display()
        .to_string()
}

/// What TAB does in bash: the text readline hands the script ($2), the
/// replies, and the line as it stands after the TAB.
#[derive(Debug, Default)]
struct BashTab {
    word: String,
    replies: Vec<String>,
    line: String,
}

/// Types each of `lines` into an interactive bash on a pseudo-terminal and
/// presses TAB once, as a user would: readline decides which text the
/// replies replace, so a reply that loses a piece of the word shows in the
/// line. The script's function is wrapped to log what it was asked and what
/// it answered; a key bound with `bind -x` logs the line and clears it.
/// Keys are sent once the rc file has run (readline keeps what is typed
/// ahead of it).
fn bash_complete(env: &Env, lines: &[&str]) -> Vec<BashTab> {
    let out = env.root().join("bash-tabs");
    let ready = env.root().join("bash-ready");
    let rc = r#"source SCRIPT
PS1='$ '
bind 'set bell-style none'
_logged() {
  _secret_complete "$@"; local s=$?
  { printf '? %s\n' "$2"; (( ${#COMPREPLY[@]} )) && printf '+ %s\n' "${COMPREPLY[@]}"; } >> OUT
  return $s
}
eval "$(complete -p secret | sed 's/ -F _secret_complete / -F _logged /')"
_line() { printf '= %s\n' "$READLINE_LINE" >> OUT; READLINE_LINE=; READLINE_POINT=0; }
bind -x '"\C-x\C-l": _line'
: > READY
"#
    .replace("SCRIPT", &script("secret.bash"))
    .replace("OUT", &out.display().to_string())
    .replace("READY", &ready.display().to_string());
    let rcfile = env.root().join("bashrc");
    std::fs::write(&rcfile, rc).unwrap();
    let mut child = shell(env, "script")
        .args([
            "-qfec",
            &format!("bash --noprofile --rcfile {} -i", rcfile.display()),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("bash to read its rc file", || ready.exists());
    let mut keys = String::new();
    for line in lines {
        keys.push_str(line);
        keys.push_str("\t\x18\x0c");
    }
    keys.push_str("exit\n");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), keys.as_bytes()).unwrap();
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_for("bash to complete every line", || {
        read().lines().filter(|l| l.starts_with("= ")).count() == lines.len()
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut tabs = Vec::new();
    let mut tab = BashTab::default();
    for l in read().lines() {
        if let Some(w) = l.strip_prefix("? ") {
            w.clone_into(&mut tab.word);
        } else if let Some(r) = l.strip_prefix("+ ") {
            tab.replies.push(r.to_owned());
        } else if let Some(line) = l.strip_prefix("= ") {
            line.clone_into(&mut tab.line);
            tabs.push(std::mem::take(&mut tab));
        }
    }
    tabs
}

#[test]
fn bash_completes_handles_commands_and_no_hidden_subcommands() {
    if !tools_present(
        "bash completion",
        &["bash", "script"],
        "apt-get install bash util-linux",
    ) {
        return;
    }
    let env = completion_world();
    let tabs = bash_complete(
        &env,
        &[
            "secret rm @op",
            "secret rm @",
            "secret exec --env K=@pr",
            "secret exec --env=K=@gi",
            "secret rm x@op",
            "secret rm @zz",
            "secret ",
            "secret plugins ",
            "secret help plugins ",
            "secret exec -e K=@k -- ech",
            "secret exec -- ls --",
            "secret --scope prod exec -e K=@k -- ech",
            "secret run ech",
            "secret run --consumer ech ech",
            "secret run bash agen",
            "secret run bash agent.sh --",
            "secret run --",
        ],
    );
    // The handle is completed in place, its @ and what precedes it kept.
    assert_eq!(tabs[0].line, "secret rm @openai_api_key ", "{:?}", tabs[0]);
    assert_eq!(
        tabs[1].replies,
        ["@github_token", "@openai_api_key", "@prod/db_password"]
    );
    assert_eq!(
        tabs[2].line, "secret exec --env K=@prod/db_password ",
        "{:?}",
        tabs[2]
    );
    assert_eq!(
        tabs[3].line, "secret exec --env=K=@github_token ",
        "{:?}",
        tabs[3]
    );
    assert_eq!(tabs[4].line, "secret rm x@openai_api_key ", "{:?}", tabs[4]);
    // No match: nothing, and no fallback to host names or files.
    assert_eq!(tabs[5].line, "secret rm @zz", "{:?}", tabs[5]);
    assert!(tabs[5].replies.is_empty(), "{:?}", tabs[5]);

    assert!(
        tabs[6].replies.contains(&"exec".to_owned()),
        "{:?}",
        tabs[6]
    );
    assert!(
        !tabs[6]
            .replies
            .iter()
            .any(|w| w.starts_with("__") || w == "get"),
        "hidden offered: {:?}",
        tabs[6]
    );
    for tab in &tabs[7..9] {
        assert!(tab.replies.contains(&"run".to_owned()), "{tab:?}");
        assert!(!tab.replies.contains(&"keeper".to_owned()), "{tab:?}");
    }

    // After `exec … --`: commands, each once, then not secret's flags.
    let commands = &tabs[9].replies;
    assert!(commands.contains(&"echo".to_owned()), "{commands:?}");
    let mut once = commands.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), commands.len(), "offered twice: {commands:?}");
    assert!(
        !tabs[10].replies.contains(&"--env".to_owned()),
        "{:?}",
        tabs[10]
    );
    // Global options before the subcommand do not hide it.
    assert!(
        tabs[11].replies.contains(&"echo".to_owned()),
        "{:?}",
        tabs[11]
    );

    // `run`: INTERPRETER is a command (an option's value is not), then
    // the script is a file and its arguments are not secret's options;
    // before INTERPRETER, secret's options.
    for tab in &tabs[12..14] {
        assert!(tab.replies.contains(&"echo".to_owned()), "{tab:?}");
        assert!(!tab.replies.iter().any(|w| w.starts_with('-')), "{tab:?}");
    }
    assert_eq!(tabs[14].line, "secret run bash agent.sh ", "{:?}", tabs[14]);
    assert!(tabs[15].replies.is_empty(), "{:?}", tabs[15]);
    assert!(
        tabs[16].replies.contains(&"--consumer".to_owned()),
        "{:?}",
        tabs[16]
    );
}

/// What zsh offers for each of `lines`: an interactive zsh on a
/// pseudo-terminal, with compinit and the script on fpath, completes each
/// line as TAB would (from zle-line-init, so no keystroke can be lost to
/// typeahead); compadd is wrapped to write each match, with its ignored
/// prefix, to a file, one block per line.
fn zsh_complete(env: &Env, lines: &[&str]) -> Vec<Vec<String>> {
    let out = env.root().join("zsh-matches");
    let cases: Vec<String> = lines.iter().map(|l| format!("'{l}'")).collect();
    let zshrc = format!(
        r#"fpath=({dir} $fpath); autoload -U compinit && compinit -u -D
compadd() {{
  if [[ ${{@[1,(i)(-|--)]}} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a hits; builtin compadd -A hits "$@"
  print -rl -- ${{hits/#/$IPREFIX}} >> {out}
  builtin compadd "$@"
}}
cases=({cases})
run-cases() {{
  local i
  for (( i = 1; i <= $#cases; i++ )); do
    print -r -- "== $(( i - 1 ))" >> {out}
    BUFFER=$cases[i]; CURSOR=$#BUFFER
    zle complete-word
  done
  print -r -- '== end' >> {out}
  BUFFER=exit; zle accept-line
}}
zle -N zle-line-init run-cases
"#,
        dir = Path::new(&script("_secret")).parent().unwrap().display(),
        out = out.display(),
        cases = cases.join(" ")
    );
    std::fs::write(env.root().join(".zshrc"), zshrc).unwrap();
    let mut child = shell(env, "script")
        .args(["-qfec", "zsh -d -i", "/dev/null"])
        .env("ZDOTDIR", env.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_for("zsh to answer every completion", || {
        read().contains("== end")
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = read();
    let mut blocks = vec![Vec::new(); lines.len()];
    let mut at = None;
    for l in text.lines() {
        if let Some(n) = l.strip_prefix("== ") {
            at = n.parse::<usize>().ok();
        } else if let Some(i) = at {
            blocks[i].push(l.to_owned());
        }
    }
    blocks
}

#[test]
fn zsh_completes_handles_commands_and_no_hidden_subcommands() {
    if !tools_present(
        "zsh completion",
        &["zsh", "script"],
        "apt-get install zsh util-linux",
    ) {
        return;
    }
    let env = completion_world();
    let got = zsh_complete(
        &env,
        &[
            "secret rm @op",
            "secret exec -e K=@pr",
            "secret ",
            "secret plugins ",
            "secret exec -e K=@k -- ech",
            "secret exec -- ls --",
            "secret run --consumer ech ech",
            "secret run bash agen",
            "secret run bash agent.sh --",
            "secret run --",
        ],
    );
    assert_eq!(got[0], ["@openai_api_key"], "{got:?}");
    assert_eq!(got[1], ["K=@prod/db_password"]);
    assert!(got[2].contains(&"exec".to_owned()), "{:?}", got[2]);
    assert!(!got[2].iter().any(|w| w.starts_with("__")), "{:?}", got[2]);
    assert!(got[3].contains(&"run".to_owned()), "{:?}", got[3]);
    assert!(!got[3].contains(&"keeper".to_owned()), "{:?}", got[3]);
    assert!(got[4].contains(&"echo".to_owned()), "{:?}", got[4]);
    assert!(!got[4].iter().any(|w| w.starts_with('-')), "{:?}", got[4]);
    assert!(!got[5].contains(&"--env".to_owned()), "{:?}", got[5]);
    // `run`: the interpreter, then the script, then nothing of secret's.
    assert!(got[6].contains(&"echo".to_owned()), "{:?}", got[6]);
    assert!(!got[6].iter().any(|w| w.starts_with('-')), "{:?}", got[6]);
    assert!(got[7].contains(&"agent.sh".to_owned()), "{:?}", got[7]);
    assert!(!got[8].contains(&"--consumer".to_owned()), "{:?}", got[8]);
    assert!(got[9].contains(&"--consumer".to_owned()), "{:?}", got[9]);
}

/// What fish offers for `line` (`complete -C`), candidates only.
fn fish_complete(env: &Env, line: &str) -> Vec<String> {
    let out = shell(env, "fish")
        .args([
            "--no-config",
            "-c",
            &format!("source {}; complete -C {line:?}", script("secret.fish")),
        ])
        .output()
        .unwrap();
    succeeded(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn fish_completes_handles_commands_and_no_hidden_subcommands() {
    if !tools_present("fish completion", &["fish"], "apt-get install fish") {
        return;
    }
    let env = completion_world();
    assert_eq!(fish_complete(&env, "secret rm @op"), ["@openai_api_key"]);
    assert_eq!(
        fish_complete(&env, "secret exec -e K=@"),
        [
            "K=@github_token",
            "K=@openai_api_key",
            "K=@prod/db_password"
        ]
    );
    assert_eq!(
        fish_complete(&env, "secret exec --file K=@pr"),
        ["K=@prod/db_password"]
    );
    let top = fish_complete(&env, "secret ");
    assert!(top.contains(&"exec".to_owned()), "{top:?}");
    assert!(!top.iter().any(|w| w.starts_with("__")), "{top:?}");
    for line in ["secret plugins ", "secret help plugins "] {
        let got = fish_complete(&env, line);
        assert!(!got.contains(&"keeper".to_owned()), "{line}: {got:?}");
    }
    assert!(fish_complete(&env, "secret exec -- ech").contains(&"echo".to_owned()));
    let after = fish_complete(&env, "secret exec -e K=@k -- ls --");
    assert!(!after.contains(&"--env".to_owned()), "{after:?}");
    // `run`: the interpreter, then the script, then nothing of secret's.
    let interpreter = fish_complete(&env, "secret run --consumer ech ech");
    assert!(interpreter.contains(&"echo".to_owned()), "{interpreter:?}");
    assert!(
        !interpreter.iter().any(|w| w.starts_with('-')),
        "{interpreter:?}"
    );
    let script = fish_complete(&env, "secret run bash agen");
    assert!(script.contains(&"agent.sh".to_owned()), "{script:?}");
    let args = fish_complete(&env, "secret run bash agent.sh --");
    assert!(!args.contains(&"--consumer".to_owned()), "{args:?}");
    let options = fish_complete(&env, "secret run --");
    assert!(options.contains(&"--consumer".to_owned()), "{options:?}");
}

/// The completion source: names without the key, never a prompt (no
/// passphrase, no terminal), nothing but names; nothing without a store.
#[test]
fn complete_handles_lists_names_without_the_key() {
    let env = completion_world();
    let out = env
        .secret(["__complete-handles"])
        .env_remove("SECRET_PASSPHRASE")
        .run();
    out.success().no_leak(b"sk-completion-value-1234");
    assert_eq!(
        out.stdout(),
        "@github_token\n@openai_api_key\n@prod/db_password\n"
    );
    let empty = Env::new();
    let out = empty
        .secret(["__complete-handles"])
        .env_remove("SECRET_PASSPHRASE")
        .run();
    assert!(out.stdout().is_empty(), "{}", out.stdout());
    // Hidden from help.
    assert!(!env.secret(["--help"]).run().stdout().contains("__complete"));
}
