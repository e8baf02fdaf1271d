"""Running one CNI plugin executable: environment, stdin, time limit, error result."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .. import errors
from .errors import CNIError, CNITimeout, cni_error

__all__ = ["PluginCall", "pairs", "run_plugin"]

JSONObject = dict[str, Any]
_STDERR_TAIL = 2000


@attrs.frozen
class PluginCall:
    """One invocation: which plugin, which command, for which container.

    ``prefix`` is prepended to the command line (e.g. ``ip netns exec NAME``
    to run the plugin inside another network namespace); ``what`` names the
    container and network for error messages.
    """

    plugin_path: str
    command: str
    container_id: str
    netns: str
    ifname: str
    bin_dirs: tuple[str, ...]
    cni_args: tuple[tuple[str, str], ...] = ()
    prefix: tuple[str, ...] = ()
    timeout: float = 30.0
    what: str = ""

    @property
    def plugin(self) -> str:
        """The plugin's type (its executable's name)."""
        return os.path.basename(self.plugin_path)

    def environ(self) -> dict[str, str]:
        """The process environment: ours, with the CNI variables set."""
        env = dict(os.environ)
        env.update(
            CNI_COMMAND=self.command,
            CNI_CONTAINERID=self.container_id,
            CNI_NETNS=self.netns,
            CNI_IFNAME=self.ifname,
            CNI_PATH=os.pathsep.join(self.bin_dirs),
            CNI_ARGS=";".join(f"{k}={v}" for k, v in self.cni_args),
        )
        return env


def run_plugin(call: PluginCall, config: Mapping[str, Any]) -> JSONObject | None:
    """Run the plugin with ``config`` on stdin; return its JSON result (None if it printed none).

    A non-zero exit raises the :class:`CNIError` subclass for the plugin's
    error code; running past ``call.timeout`` kills its process group and
    raises :class:`CNITimeout`.
    """
    try:
        stdin = json.dumps(config, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise errors.InvalidArgument(
            f"{call.what}: config for CNI plugin {call.plugin!r} is not JSON: {e}"
        ) from None
    stdout, stderr, status = _execute(call, stdin)
    if status != 0:
        raise _failure(call, stdout, stderr, status)
    return _parse_result(call, stdout)


def _execute(call: PluginCall, stdin: bytes) -> tuple[bytes, bytes, int]:
    argv = [*call.prefix, call.plugin_path]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=call.environ(),
            start_new_session=True,
        )
    except OSError as e:
        raise errors.FailedPrecondition(
            f"{call.what}: cannot run CNI plugin {call.plugin_path} ({call.command}): {e}"
        ) from e
    try:
        stdout, stderr = proc.communicate(stdin, timeout=call.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CNITimeout(
            f"{call.what}: CNI plugin {call.plugin!r} ({call.command}) did not finish "
            f"within {call.timeout:g}s and was killed",
            plugin=call.plugin,
            command=call.command,
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    return stdout, stderr, proc.returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _failure(call: PluginCall, stdout: bytes, stderr: bytes, status: int) -> CNIError:
    parsed = _decode(stdout)
    err_tail = stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
    if parsed is not None and isinstance(parsed.get("code"), int):
        return cni_error(
            call.what,
            code=int(parsed["code"]),
            plugin=call.plugin,
            command=call.command,
            msg=str(parsed.get("msg", "")),
            details=str(parsed.get("details", "")) or err_tail,
        )
    text = err_tail or stdout.decode(errors="replace").strip()[-_STDERR_TAIL:]
    return cni_error(
        call.what,
        code=0,
        plugin=call.plugin,
        command=call.command,
        msg=f"exit status {status}",
        details=text,
    )


def _parse_result(call: PluginCall, stdout: bytes) -> JSONObject | None:
    if not stdout.strip():
        return None
    parsed = _decode(stdout)
    if parsed is None:
        raise cni_error(
            call.what,
            code=0,
            plugin=call.plugin,
            command=call.command,
            msg="plugin printed a result that is not a JSON object",
            details=stdout.decode(errors="replace")[:_STDERR_TAIL],
        )
    return parsed


def _decode(data: bytes) -> JSONObject | None:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def pairs(items: Sequence[tuple[str, str]] | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """CNI_ARGS given as a mapping or as pairs, as a tuple of pairs."""
    if isinstance(items, Mapping):
        return tuple((str(k), str(v)) for k, v in items.items())
    return tuple((str(k), str(v)) for k, v in items)
