"""Runs a command on a new pseudo-terminal and types a line at its prompt, like a person at a terminal.

Usage: type_at_terminal.py PROMPT -- COMMAND [ARGS...]; the line to type is read from standard input (never from
the command line or the environment). Waits for PROMPT on the terminal, then for the terminal's echo to be off
(the command turns it off after printing its prompt), types the line, and reads everything the terminal shows
until the command exits. Prints {"transcript": TEXT, "code": EXIT} as JSON on standard output.
"""

import json
import os
import pty
import select
import sys
import termios
import time

# Only a guard against a hung command; nothing here depends on how fast the command is.
GIVE_UP_AFTER = 120.0


def main():
    prompt = sys.argv[1].encode()
    argv = sys.argv[sys.argv.index("--") + 1 :]
    line = sys.stdin.readline().rstrip("\n").encode()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    shown = bytearray()
    deadline = time.monotonic() + GIVE_UP_AFTER

    def read_some():
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            sys.exit("gave up waiting; the terminal showed: %r" % bytes(shown))
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the command exited and closed the terminal
            return False
        shown.extend(chunk)
        return bool(chunk)

    while prompt not in shown:
        if not read_some():
            break
    else:
        while termios.tcgetattr(fd)[3] & termios.ECHO:
            if time.monotonic() > deadline:
                sys.exit("echo never turned off; the terminal showed: %r" % bytes(shown))
            time.sleep(0.01)
        os.write(fd, line + b"\n")
        while read_some():
            pass
    _, status = os.waitpid(pid, 0)
    json.dump(
        {"transcript": shown.decode("utf-8", "replace"), "code": os.waitstatus_to_exitcode(status)},
        sys.stdout,
    )


main()
