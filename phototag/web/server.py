"""Running the web app: uvicorn on localhost, a URL printed, a clean stop on Ctrl-C / SIGTERM."""

from __future__ import annotations

import ipaddress
import secrets
import signal
import socket
import threading
import webbrowser
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from phototag.errors import PhototagError
from phototag.library import Library


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def needs_token(host: str, token: str | None) -> str | None:
    """The token the server asks for: the given one, or a fresh one off localhost."""
    if token is not None:
        if len(token) < 8:
            raise PhototagError("the token must be at least 8 characters long")
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(18)


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


@contextmanager
def _quiet_signals() -> Any:
    """uvicorn stops on SIGINT/SIGTERM and then re-raises the signal to the handler it found:
    with this one in place that ends the process normally (exit 0) instead of as killed."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    for sig in previous:
        signal.signal(sig, lambda signum, frame: None)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    library: Library,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    open_browser: bool = False,
    write: str | None = None,
    verbose: int = 0,
    echo: Callable[[str], None] = print,
) -> int:
    """Serve ``library`` until Ctrl-C or SIGTERM; returns the exit status (0)."""
    import uvicorn

    from phototag.web.app import create_app

    token = needs_token(host, token)
    sock = listen(host, port)  # first: a busy port fails before uvicorn sets up its logging
    try:
        app = create_app(library, write=write, token=token)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="info" if verbose > 1 else "warning",
            access_log=verbose > 0, lifespan="on", server_header=False,
        )  # fmt: skip

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if not self.started:
                    return
                bound = self.servers[0].sockets[0].getsockname()[1] if self.servers else port
                url = url_for(host, bound)
                echo(f"serving {library.catalog_path} at {url} (Ctrl-C stops)")
                if token:
                    echo(f"token: {token}  (open {url}?token={token} once; a cookie keeps it)")
                if open_browser:
                    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

        server = Server(config)
        with _quiet_signals():
            server.run(sockets=[sock])
    finally:
        sock.close()
    echo("stopped")
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a busy port is a one-line error, not a log dump."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PhototagError(f"cannot listen on {host}: {exc.strerror.lower()}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise PhototagError(
            f"cannot listen on {host}:{port}: {reason}; try another --port"
        ) from None
    sock.set_inheritable(True)
    return sock
