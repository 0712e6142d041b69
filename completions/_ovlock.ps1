
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'ovlock' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'ovlock'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'ovlock' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print the version and exit')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print the version and exit')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'With --version: also the git commit and the target it was built for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Full report: lock files, owners, verdict, reasons and what to do')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'One line per directory; the exit code is the verdict')
            [CompletionResult]::new('who', 'who', [CompletionResultType]::ParameterValue, 'The processes that own the directory')
            [CompletionResult]::new('clear-stale', 'clear-stale', [CompletionResultType]::ParameterValue, 'Remove stale .openviking.pid files and path locks (never .openviking.lock)')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Prometheus metrics of the directories, in the text format that node_exporter''s textfile collector reads')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ovlock;status' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ovlock;check' {
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Look again every 0.2 s until every directory is free or stale, for at most SECONDS. At the deadline it exits with the verdict then, and says on stderr what still holds it (unless -q); on a terminal it also says what it waits for')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('--scan', '--scan', [CompletionResultType]::ParameterName, 'Also scan every process for users of the directory, as status does (otherwise only when the answer needs it)')
            [CompletionResult]::new('--ask', '--ask', [CompletionResultType]::ParameterName, 'Also ask each owner''s OpenViking server on loopback whether it answers, as status does (adds at most about 2 s)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ovlock;who' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Print only the owners'' PIDs, one per line')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Every OpenViking process on the machine, with the data directories its open files belong to')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ovlock;clear-stale' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Say what would be removed, and remove nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Say what would be removed, and remove nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ovlock;metrics' {
            [CompletionResult]::new('--textfile', '--textfile', [CompletionResultType]::ParameterName, 'Write to FILE instead of stdout, atomically: a temporary file beside it (named *.tmp, which node_exporter ignores), synced, then renamed')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Also every data directory that `who --all` finds in use (without DATA_DIR, the default ./data is then left out unless ov.conf names it)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ovlock;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour the output')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document (schema_version 1) instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing; only the exit code speaks')
            [CompletionResult]::new('--no-ask', '--no-ask', [CompletionResultType]::ParameterName, 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ovlock;help' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Full report: lock files, owners, verdict, reasons and what to do')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'One line per directory; the exit code is the verdict')
            [CompletionResult]::new('who', 'who', [CompletionResultType]::ParameterValue, 'The processes that own the directory')
            [CompletionResult]::new('clear-stale', 'clear-stale', [CompletionResultType]::ParameterValue, 'Remove stale .openviking.pid files and path locks (never .openviking.lock)')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Prometheus metrics of the directories, in the text format that node_exporter''s textfile collector reads')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ovlock;help;status' {
            break
        }
        'ovlock;help;check' {
            break
        }
        'ovlock;help;who' {
            break
        }
        'ovlock;help;clear-stale' {
            break
        }
        'ovlock;help;metrics' {
            break
        }
        'ovlock;help;completions' {
            break
        }
        'ovlock;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
