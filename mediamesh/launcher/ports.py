"""Check that every port the mesh needs is free before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Mapping

import psutil


class PortsInUse(Exception):
    """One or more ports are taken; the message names each port, its user and the fix."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn sets, so a port in TIME_WAIT after our own last run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str | None:
    """`pid 123 (python -m http.server)` for the process listening on port, when psutil can tell."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return f"pid {conn.pid} ({_describe(conn.pid)})"
    return None


def check_ports(host: str, ports: Mapping[int, str]) -> None:
    """Raise PortsInUse naming every taken port; `ports` maps port → the process that needs it."""
    problems = []
    for port, name in sorted(ports.items()):
        if port_is_free(host, port):
            continue
        owner = port_owner(port)
        used_by = f"by {owner}" if owner else "by another process"
        problems.append(f"port {port} ({name}) is already in use {used_by}; "
                        f"stop it, or pass --port {name}=<free port>")
    if problems:
        raise PortsInUse("\n".join(problems))


def _describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "unknown process"
    return cmdline if len(cmdline) <= 80 else cmdline[:77] + "..."
