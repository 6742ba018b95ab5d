"""What tests that start real services share: a free local port, the installed Chromium."""

import shutil
import socket


def free_port() -> int:
    """A TCP port nobody listens on right now, on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser() -> str | None:
    """The path of an installed Chromium (Debian's ``chromium``) or Chrome, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None
