
use builtin;
use str;

set edit:completion:arg-completer[ovlock] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'ovlock'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'ovlock'= {
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -V 'Print the version and exit'
            cand --version 'Print the version and exit'
            cand --verbose 'With --version: also the git commit and the target it was built for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand status 'Full report: lock files, owners, verdict, reasons and what to do'
            cand check 'One line per directory; the exit code is the verdict'
            cand who 'The processes that own the directory'
            cand clear-stale 'Remove stale .openviking.pid files and path locks (never .openviking.lock)'
            cand metrics 'Prometheus metrics of the directories, in the text format that node_exporter''s textfile collector reads'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ovlock;status'= {
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ovlock;check'= {
            cand --wait 'Look again every 0.2 s until every directory is free or stale, for at most SECONDS. At the deadline it exits with the verdict then, and says on stderr what still holds it (unless -q); on a terminal it also says what it waits for'
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand --scan 'Also scan every process for users of the directory, as status does (otherwise only when the answer needs it)'
            cand --ask 'Also ask each owner''s OpenViking server on loopback whether it answers, as status does (adds at most about 2 s)'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ovlock;who'= {
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand --pid 'Print only the owners'' PIDs, one per line'
            cand --all 'Every OpenViking process on the machine, with the data directories its open files belong to'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ovlock;clear-stale'= {
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand -n 'Say what would be removed, and remove nothing'
            cand --dry-run 'Say what would be removed, and remove nothing'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ovlock;metrics'= {
            cand --textfile 'Write to FILE instead of stdout, atomically: a temporary file beside it (named *.tmp, which node_exporter ignores), synced, then renamed'
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand --all 'Also every data directory that `who --all` finds in use (without DATA_DIR, the default ./data is then left out unless ov.conf names it)'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ovlock;completions'= {
            cand --color 'When to colour the output'
            cand --config 'The ov.conf to read: storage.workspace when no DATA_DIR is given, and storage.skip_process_lock for its workspace, with DATA_DIRs too [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf]'
            cand --match 'Also accept a process whose name, exe or command line contains SUBSTRING (case-insensitive) as OpenViking, besides "openviking"'
            cand --json 'Print one JSON document (schema_version 1) instead of text'
            cand -q 'Print nothing; only the exit code speaks'
            cand --quiet 'Print nothing; only the exit code speaks'
            cand --no-ask 'Do not ask the owners'' OpenViking servers over HTTP on loopback (status, who and metrics ask them by default; check only with --ask)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ovlock;help'= {
            cand status 'Full report: lock files, owners, verdict, reasons and what to do'
            cand check 'One line per directory; the exit code is the verdict'
            cand who 'The processes that own the directory'
            cand clear-stale 'Remove stale .openviking.pid files and path locks (never .openviking.lock)'
            cand metrics 'Prometheus metrics of the directories, in the text format that node_exporter''s textfile collector reads'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ovlock;help;status'= {
        }
        &'ovlock;help;check'= {
        }
        &'ovlock;help;who'= {
        }
        &'ovlock;help;clear-stale'= {
        }
        &'ovlock;help;metrics'= {
        }
        &'ovlock;help;completions'= {
        }
        &'ovlock;help;help'= {
        }
    ]
    $completions[$command]
}
