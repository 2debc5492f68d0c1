# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_secret_global_optspecs
    string join \n passphrase-fd= scope= h/help V/version
end

function __fish_secret_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_secret_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_secret_using_subcommand
    set -l cmd (__fish_secret_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c secret -n "__fish_secret_needs_command" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_needs_command" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_needs_command" -s V -l version -d 'Print version'
complete -c secret -n "__fish_secret_needs_command" -f -a "init" -d 'Create the store'
complete -c secret -n "__fish_secret_needs_command" -f -a "add" -d 'Store a new secret'
complete -c secret -n "__fish_secret_needs_command" -f -a "rotate" -d 'Replace a secret\'s value'
complete -c secret -n "__fish_secret_needs_command" -f -a "rm" -d 'Remove a secret'
complete -c secret -n "__fish_secret_needs_command" -f -a "list" -d 'List secrets: metadata only, never values'
complete -c secret -n "__fish_secret_needs_command" -f -a "inspect" -d 'Show one secret\'s metadata: provider, kind, fingerprint, times, version, backend. Never the value'
complete -c secret -n "__fish_secret_needs_command" -f -a "link" -d 'Make a local handle that resolves to a remote reference'
complete -c secret -n "__fish_secret_needs_command" -f -a "grants" -d 'Explain what grants.toml allows'
complete -c secret -n "__fish_secret_needs_command" -f -a "audit" -d 'Show or verify the audit trail'
complete -c secret -n "__fish_secret_needs_command" -f -a "passwd" -d 'Change the vault passphrase'
complete -c secret -n "__fish_secret_needs_command" -f -a "unlock" -d 'Cache the vault key for a while, so commands skip the passphrase'
complete -c secret -n "__fish_secret_needs_command" -f -a "lock" -d 'Drop the cached vault key now'
complete -c secret -n "__fish_secret_needs_command" -f -a "exec" -d 'Run a command with secrets in its environment'
complete -c secret -n "__fish_secret_needs_command" -f -a "run" -d 'Run a script with the secrets its header asks for (shebang mode)'
complete -c secret -n "__fish_secret_needs_command" -f -a "plugins" -d 'Supervise long-running plugins declared in plugins.toml'
complete -c secret -n "__fish_secret_needs_command" -f -a "import" -d 'Store a .env file\'s values in the store and write a references-only env file'
complete -c secret -n "__fish_secret_needs_command" -f -a "check" -d 'Resolve every reference a launch would need, without launching'
complete -c secret -n "__fish_secret_needs_command" -f -a "reveal" -d 'Print one secret\'s value on the terminal, for debugging'
complete -c secret -n "__fish_secret_needs_command" -f -a "broker" -d 'A local capability broker: callers use a key without holding it'
complete -c secret -n "__fish_secret_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand init" -l backend -d 'Where values are kept' -r -f -a "file\t'The encrypted file vault (the default; works anywhere, no daemon)'
keychain\t'The OS keychain (Secret Service on Linux)'"
complete -c secret -n "__fish_secret_using_subcommand init" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand init" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand add" -l provider -d 'Who issued the secret (openai, github, …)' -r
complete -c secret -n "__fish_secret_using_subcommand add" -l kind -d 'What the secret is (api_key, password, …)' -r
complete -c secret -n "__fish_secret_using_subcommand add" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand add" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand add" -l stdin -d 'Read the value from standard input'
complete -c secret -n "__fish_secret_using_subcommand add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand rotate" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand rotate" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand rotate" -l stdin -d 'Read the value from standard input'
complete -c secret -n "__fish_secret_using_subcommand rotate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand rm" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand rm" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand rm" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand list" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand list" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand list" -l json -d 'Print JSON instead of a table'
complete -c secret -n "__fish_secret_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand inspect" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand inspect" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand inspect" -l json -d 'Print JSON'
complete -c secret -n "__fish_secret_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand link" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand link" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand link" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand grants; and not __fish_seen_subcommand_from check help" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand grants; and not __fish_seen_subcommand_from check help" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand grants; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand grants; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Say whether a consumer may have a secret, and which rule decides'
complete -c secret -n "__fish_secret_using_subcommand grants; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from check" -l consumer -d 'The consumer: exec, broker, or plugin:ID for a plugin' -r
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from check" -l purpose -d 'The purpose the consumer states' -r
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from check" -l delivery -d 'How the value would be delivered' -r -f -a "env\t''
file\t''
http\t''"
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from check" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from check" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from help" -f -a "check" -d 'Say whether a consumer may have a secret, and which rule decides'
complete -c secret -n "__fish_secret_using_subcommand grants; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand audit" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand audit" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand audit" -l json -d 'Print the JSON lines as stored'
complete -c secret -n "__fish_secret_using_subcommand audit" -l verify -d 'Check the hash chain; exit 1 naming the first bad line'
complete -c secret -n "__fish_secret_using_subcommand audit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand passwd" -l new-passphrase-fd -d 'Read the new passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand passwd" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand passwd" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand passwd" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand unlock" -l for -d 'How long: 15m, 2h, … (at most 24h)' -r
complete -c secret -n "__fish_secret_using_subcommand unlock" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand unlock" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand unlock" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand lock" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand lock" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand lock" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -s e -l env -d 'Set VAR in the child: to the secret behind @handle, or to a literal' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l env-file -d 'Read VAR=@handle lines from FILE (comments and blank lines allowed)' -r -F
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l file -d 'Give the child VAR=/dev/fd/N, an in-memory file holding the secret' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l proxy -d 'Give the child a placeholder for the secret; a loopback proxy puts the value on the wire, only to the hosts its grant allows' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l proxy-egress -d 'With --proxy: what happens to connections to hosts no proxied secret may go to: tunnelled untouched (allow), or refused (deny)' -r -f -a "allow\t'Tunnel connections to other hosts untouched'
deny\t'Refuse them: only the hosts of the proxied secrets are reachable'"
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l keep -d 'With -i: keep this inherited variable (a name or a glob like LC_*)' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l unset -d 'Remove this inherited variable' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l consumer -d 'Ask as this consumer (grants.toml decides what it may have)' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l purpose -d 'The purpose to state (checked against the grant\'s purposes)' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l stop-timeout -d 'After a withdrawn grant\'s stop signal (TERM), how long the child has before SIGKILL' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l death-signal -d 'The signal the child gets if secret is killed' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -s i -l ignore-environment -d 'Start the child with an empty environment (plus --keep and mappings)'
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l exec -d 'Replace secret with the command (no supervision, no masking)'
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l mask -d 'Mask secrets in the child\'s output (the default when CI is set)'
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l no-mask -d 'Do not mask, even when CI is set'
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -l subreaper -d 'Reap every orphaned descendant, as PID 1 does (PR_SET_CHILD_SUBREAPER)'
complete -c secret -n "__fish_secret_using_subcommand exec; and not __fish_secret_after_dashdash" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l file -d 'Give the child VAR=/dev/fd/N, an in-memory file holding the secret' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l proxy -d 'Give the child a placeholder for the secret; a loopback proxy puts the value on the wire, only to the hosts its grant allows' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l proxy-egress -d 'With --proxy: what happens to connections to hosts no proxied secret may go to: tunnelled untouched (allow), or refused (deny)' -r -f -a "allow\t'Tunnel connections to other hosts untouched'
deny\t'Refuse them: only the hosts of the proxied secrets are reachable'"
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l keep -d 'With -i: keep this inherited variable (a name or a glob like LC_*)' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l unset -d 'Remove this inherited variable' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l consumer -d 'Ask as this consumer (grants.toml decides what it may have)' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l purpose -d 'The purpose to state (checked against the grant\'s purposes)' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l stop-timeout -d 'After a withdrawn grant\'s stop signal (TERM), how long the child has before SIGKILL' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l death-signal -d 'The signal the child gets if secret is killed' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l check -d 'Check the script\'s header instead of running it: resolve every reference and report each one, as `secret check` does. Put it before INTERPRETER'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -s i -l ignore-environment -d 'Start the child with an empty environment (plus --keep and mappings)'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l exec -d 'Replace secret with the command (no supervision, no masking)'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l mask -d 'Mask secrets in the child\'s output (the default when CI is set)'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l no-mask -d 'Do not mask, even when CI is set'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -l subreaper -d 'Reap every orphaned descendant, as PID 1 does (PR_SET_CHILD_SUBREAPER)'
complete -c secret -n "__fish_secret_using_subcommand run; and not __fish_secret_run_command_at >/dev/null" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -f -a "run" -d 'Start every enabled plugin and supervise them'
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -f -a "check" -d 'Validate the file and resolve every plugin\'s secrets'
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -f -a "status" -d 'Show the state of every plugin of a running supervisor'
complete -c secret -n "__fish_secret_using_subcommand plugins; and not __fish_seen_subcommand_from run check status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from run" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from run" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from check" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from check" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from status" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from status" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from status" -l json -d 'Print JSON'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from help" -f -a "run" -d 'Start every enabled plugin and supervise them'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate the file and resolve every plugin\'s secrets'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the state of every plugin of a running supervisor'
complete -c secret -n "__fish_secret_using_subcommand plugins; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand import" -l prefix -d 'Store each value as @PREFIX/name instead of @name' -r
complete -c secret -n "__fish_secret_using_subcommand import" -l out -d 'Write the references-only env file here instead of standard output' -r -F
complete -c secret -n "__fish_secret_using_subcommand import" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand import" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand import" -l force -d 'Replace the values of handles that already exist (and an existing --out file)'
complete -c secret -n "__fish_secret_using_subcommand import" -l dry-run -d 'Say what would be stored and written; change nothing'
complete -c secret -n "__fish_secret_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand check" -s e -l env -d 'Set VAR in the child: to the secret behind @handle, or to a literal' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l env-file -d 'Read VAR=@handle lines from FILE (comments and blank lines allowed)' -r -F
complete -c secret -n "__fish_secret_using_subcommand check" -l file -d 'Give the child VAR=/dev/fd/N, an in-memory file holding the secret' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l proxy -d 'Give the child a placeholder for the secret; a loopback proxy puts the value on the wire, only to the hosts its grant allows' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l proxy-egress -d 'With --proxy: what happens to connections to hosts no proxied secret may go to: tunnelled untouched (allow), or refused (deny)' -r -f -a "allow\t'Tunnel connections to other hosts untouched'
deny\t'Refuse them: only the hosts of the proxied secrets are reachable'"
complete -c secret -n "__fish_secret_using_subcommand check" -l keep -d 'With -i: keep this inherited variable (a name or a glob like LC_*)' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l unset -d 'Remove this inherited variable' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l consumer -d 'Ask as this consumer (grants.toml decides what it may have)' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l purpose -d 'The purpose to state (checked against the grant\'s purposes)' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l stop-timeout -d 'After a withdrawn grant\'s stop signal (TERM), how long the child has before SIGKILL' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l death-signal -d 'The signal the child gets if secret is killed' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand check" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand check" -s i -l ignore-environment -d 'Start the child with an empty environment (plus --keep and mappings)'
complete -c secret -n "__fish_secret_using_subcommand check" -l exec -d 'Replace secret with the command (no supervision, no masking)'
complete -c secret -n "__fish_secret_using_subcommand check" -l mask -d 'Mask secrets in the child\'s output (the default when CI is set)'
complete -c secret -n "__fish_secret_using_subcommand check" -l no-mask -d 'Do not mask, even when CI is set'
complete -c secret -n "__fish_secret_using_subcommand check" -l subreaper -d 'Reap every orphaned descendant, as PID 1 does (PR_SET_CHILD_SUBREAPER)'
complete -c secret -n "__fish_secret_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand reveal" -l consumer -d 'Ask as this consumer (grants.toml decides what it may have)' -r
complete -c secret -n "__fish_secret_using_subcommand reveal" -l purpose -d 'The purpose to state (checked against the grant\'s purposes)' -r
complete -c secret -n "__fish_secret_using_subcommand reveal" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand reveal" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand reveal" -l force -d 'Print even when standard output is not a terminal (a pipe or a file then gets the value\'s exact bytes)'
complete -c secret -n "__fish_secret_using_subcommand reveal" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -f -a "run" -d 'Serve the routes of FILE until SIGTERM'
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -f -a "check" -d 'Validate FILE and resolve every route\'s secret'
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -f -a "status" -d 'Show the routes, request counts, bytes and rate limits of the broker running FILE. Exit 0, or 1 when none runs'
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -f -a "token" -d 'Print the caller token (created when there is none)'
complete -c secret -n "__fish_secret_using_subcommand broker; and not __fish_seen_subcommand_from run check status token help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from run" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from run" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from check" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from check" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from status" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from status" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from status" -l json -d 'Print JSON'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from token" -l passphrase-fd -d 'Read the vault passphrase from file descriptor N' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from token" -l scope -d 'Look handles up in a scope first: with team-a/ws-1, @db is team-a/ws-1/db, then team-a/db, then db (the narrowest wins)' -r
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from token" -l rotate -d 'Replace the token with a new one; a running broker switches to it at once'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from token" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from help" -f -a "run" -d 'Serve the routes of FILE until SIGTERM'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate FILE and resolve every route\'s secret'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the routes, request counts, bytes and rate limits of the broker running FILE. Exit 0, or 1 when none runs'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from help" -f -a "token" -d 'Print the caller token (created when there is none)'
complete -c secret -n "__fish_secret_using_subcommand broker; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "init" -d 'Create the store'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "add" -d 'Store a new secret'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "rotate" -d 'Replace a secret\'s value'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "rm" -d 'Remove a secret'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "list" -d 'List secrets: metadata only, never values'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "inspect" -d 'Show one secret\'s metadata: provider, kind, fingerprint, times, version, backend. Never the value'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "link" -d 'Make a local handle that resolves to a remote reference'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "grants" -d 'Explain what grants.toml allows'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "audit" -d 'Show or verify the audit trail'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "passwd" -d 'Change the vault passphrase'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "unlock" -d 'Cache the vault key for a while, so commands skip the passphrase'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "lock" -d 'Drop the cached vault key now'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "exec" -d 'Run a command with secrets in its environment'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "run" -d 'Run a script with the secrets its header asks for (shebang mode)'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "plugins" -d 'Supervise long-running plugins declared in plugins.toml'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "import" -d 'Store a .env file\'s values in the store and write a references-only env file'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "check" -d 'Resolve every reference a launch would need, without launching'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "reveal" -d 'Print one secret\'s value on the terminal, for debugging'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "broker" -d 'A local capability broker: callers use a key without holding it'
complete -c secret -n "__fish_secret_using_subcommand help; and not __fish_seen_subcommand_from init add rotate rm list inspect link grants audit passwd unlock lock exec run plugins import check reveal broker help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from grants" -f -a "check" -d 'Say whether a consumer may have a secret, and which rule decides'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from plugins" -f -a "run" -d 'Start every enabled plugin and supervise them'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from plugins" -f -a "check" -d 'Validate the file and resolve every plugin\'s secrets'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from plugins" -f -a "status" -d 'Show the state of every plugin of a running supervisor'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from broker" -f -a "run" -d 'Serve the routes of FILE until SIGTERM'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from broker" -f -a "check" -d 'Validate FILE and resolve every route\'s secret'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from broker" -f -a "status" -d 'Show the routes, request counts, bytes and rate limits of the broker running FILE. Exit 0, or 1 when none runs'
complete -c secret -n "__fish_secret_using_subcommand help; and __fish_seen_subcommand_from broker" -f -a "token" -d 'Print the caller token (created when there is none)'

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
    set -l takes_value --consumer --death-signal --file --keep --passphrase-fd --proxy --proxy-egress --purpose --scope --stop-timeout --unset
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
