"""Subprocesses of the benchmark and what /proc says about them (CPU time, RSS, PSS, machine load).

Everything here is Linux-specific (/proc); CPU pinning uses `os.sched_setaffinity`, so it needs no
`taskset` binary.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = frozenset(os.sched_getaffinity(0))  # before anything is pinned
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def fd_limit() -> int:
    """The hard limit on open files a child of ours may raise itself to."""
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def free_port() -> int:
    """A free loopback TCP port (the kernel's pick; closed again before the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may contain spaces


def children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process on the machine."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields:
            out.setdefault(int(fields[1]), []).append(int(entry))
    return out


def descendants(root: int) -> list[int]:
    """`root` and every process below it (the router's forked workers)."""
    tree = children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, ()))
    return out


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / CLK_TCK


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def pss_mb(pid: int) -> float | None:
    """Proportional set size: shared pages of forked workers counted once across them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, steal / CLK_TCK, (busy + idle + iowait + steal) / CLK_TCK


def set_affinity(pids: Iterable[int], cpus: set[int] | None) -> None:
    """Pin every thread of these processes to `cpus` (None: every CPU this process may use)."""
    target = cpus or ALL_CPUS
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, target)
            except OSError:
                pass


def _set_parent_death_signal(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG, sig) in a freshly forked child (Linux)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)


def _decode_addr(hex_addr: str) -> tuple[str, int]:
    """An address from /proc/net/tcp{,6} or udp{,6} ("0100007F:1F90"): (ip, port)."""
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host-endian
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), int(port, 16)


def _is_local(ip: str) -> bool:
    """Loopback or unspecified (a listening or unconnected socket), also as IPv4-mapped IPv6."""
    ip = ip.removeprefix("::ffff:")
    return ip.startswith("127.") or ip in ("::1", "0.0.0.0", "::")


def remote_connections(pids: Iterable[int]) -> list[str]:
    """TCP/UDP sockets of these processes whose peer is neither loopback nor unspecified, as
    "tcp 10.0.0.1:443" strings: a gateway that should only talk to loopback shows none."""
    inodes: set[str] = set()
    pid_list = list(pids)
    for pid in pid_list:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    if not inodes or not pid_list:
        return []
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid_list[0]}/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[9] not in inodes:
                continue
            ip, port = _decode_addr(fields[2])
            if not _is_local(ip):
                found.append(f"{proto} {ip}:{port}")
    return sorted(set(found))


class Service:
    """A long-running subprocess in its own session, stopped with its whole process group."""

    def __init__(self, name: str, cmd: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
                 log_path: Path, cpus: set[int] | None = None, die_with_parent: bool = False) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.cpus = cpus
        # SIGTERM from the kernel when the process that started it dies, even by SIGKILL (a harness
        # killed outright leaves no server behind; Ctrl-C and SIGTERM are handled by stop()).
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cpus = set(self.cpus or ALL_CPUS)  # explicit: never inherit the caller's pinning
        die_with_parent = self.die_with_parent

        def setup_child() -> None:
            os.sched_setaffinity(0, cpus)
            if die_with_parent:
                _set_parent_death_signal(signal.SIGTERM)

        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=setup_child)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        return descendants(self.pid) if self.alive() else []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_http(self, url: str, timeout_s: float = 30.0, successes: int = 1) -> None:
        """Poll `url` until it answers 200 `successes` times in a row (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        streak = 0
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    streak = streak + 1 if resp.status == 200 else 0
            except (urllib.error.URLError, OSError):
                streak = 0
            if streak >= successes:
                return
            time.sleep(0.05 if streak else 0.1)
        raise RuntimeError(f"{self.name} not ready at {url} after {timeout_s:g}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whichever of its processes is left after `timeout_s`."""
        proc = self.proc
        if proc is None:
            return
        members = self.pids()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # start_new_session: the group id is the leader's pid
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 2.0
        for pid in members:  # forked workers that outlived their parent, if any
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5.0)
        self._log.close()
        self.proc = None
