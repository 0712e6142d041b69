# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ovlock_global_optspecs
    string join \n json color= q/quiet config= match= no-ask V/version verbose h/help
end

function __fish_ovlock_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ovlock_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ovlock_using_subcommand
    set -l cmd (__fish_ovlock_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ovlock -n "__fish_ovlock_needs_command" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_needs_command" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_needs_command" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_needs_command" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_needs_command" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_needs_command" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_needs_command" -s V -l version -d 'Print the version and exit'
complete -c ovlock -n "__fish_ovlock_needs_command" -l verbose -d 'With --version: also the git commit and the target it was built for'
complete -c ovlock -n "__fish_ovlock_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "status" -d 'Full report: lock files, owners, verdict, reasons and what to do'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "check" -d 'One line per directory; the exit code is the verdict'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "who" -d 'The processes that own the directory'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "clear-stale" -d 'Remove stale .openviking.pid files and path locks (never .openviking.lock)'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "metrics" -d 'Prometheus metrics of the directories, in the text format that node_exporter\'s textfile collector reads'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c ovlock -n "__fish_ovlock_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l wait -d 'Look again every 0.2 s until every directory is free or stale, for at most SECONDS. At the deadline it exits with the verdict then, and says on stderr what still holds it (unless -q); on a terminal it also says what it waits for' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l scan -d 'Also scan every process for users of the directory, as status does (otherwise only when the answer needs it)'
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l ask -d 'Also ask each owner\'s OpenViking server on loopback whether it answers, as status does (adds at most about 2 s)'
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l pid -d 'Print only the owners\' PIDs, one per line'
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l all -d 'Every OpenViking process on the machine, with the data directories its open files belong to'
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_using_subcommand who" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -s n -l dry-run -d 'Say what would be removed, and remove nothing'
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_using_subcommand clear-stale" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l textfile -d 'Write to FILE instead of stdout, atomically: a temporary file beside it (named *.tmp, which node_exporter ignores), synced, then renamed' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l all -d 'Also every data directory that `who --all` finds in use (without DATA_DIR, the default ./data is then left out unless ov.conf names it)'
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_using_subcommand metrics" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -l color -d 'When to colour the output' -r -f -a "auto\t'Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it)'
always\t''
never\t''"
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -l config -d 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]' -r -F
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -l match -d 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"' -r
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -l json -d 'Print one JSON document (schema_version 1) instead of text'
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -s q -l quiet -d 'Print nothing; only the exit code speaks'
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -l no-ask -d 'Do not ask the owners\' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
complete -c ovlock -n "__fish_ovlock_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "status" -d 'Full report: lock files, owners, verdict, reasons and what to do'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "check" -d 'One line per directory; the exit code is the verdict'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "who" -d 'The processes that own the directory'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "clear-stale" -d 'Remove stale .openviking.pid files and path locks (never .openviking.lock)'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "metrics" -d 'Prometheus metrics of the directories, in the text format that node_exporter\'s textfile collector reads'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c ovlock -n "__fish_ovlock_using_subcommand help; and not __fish_seen_subcommand_from status check who clear-stale metrics completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
