"""The command line's exit codes (README, ``conveyor-qc --help``)."""

EXIT_OK = 0
#: bad input, bad settings, an unwritable output: a one-line message names the problem
EXIT_ERROR = 1
#: wrong usage (argparse's own code)
EXIT_USAGE = 2
#: the input ended early: a video before the frames it announced, a frame of another size, a live
#: stream lost for longer than --reconnect-timeout (results hold what could be read)
EXIT_PARTIAL = 3
#: stopped by Ctrl-C (results hold everything seen until then)
EXIT_INTERRUPTED = 130
#: stopped by SIGTERM (systemd, Docker, Kubernetes), the same clean way: 128 + 15, as a shell reports
#: a process ended by SIGTERM (systemd: SuccessExitStatus=143 counts it as a clean stop)
EXIT_TERMINATED = 143
#: standard output's reader went away (``conveyor-qc quality RUN | head``): ended quietly, 128 + 13
#: as a shell reports a process ended by SIGPIPE (which Python ignores, so it is not killed by it)
EXIT_STDOUT_CLOSED = 141
