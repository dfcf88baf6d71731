"""Fault injection: run a job in a child process and SIGKILL it at a named point of a writing path.

A kill point is the N-th call (in the child, counting every wrapped function) of one of ``TARGETS``, and when:
``before`` the call, ``after`` it returns, or ``during`` it (a thread kills the process a moment after the call
starts, while Lance's native code is inside the commit). ``trace`` runs a job once and lists every call, so a test
can kill at every point a job reaches instead of at points it guessed.

Children come from a forkserver that imported curata, torch and Lance once, so a killed run costs milliseconds of
start-up, not seconds; the pytest process never forks itself (its Lance and torch threads would not survive it).
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import signal
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lance
import lance.fragment

import curata._internal.atomic

# name -> (owner, attribute): every function through which a writing path changes files
TARGETS: dict[str, tuple[Any, str]] = {
    "os.rename": (os, "rename"),
    "os.replace": (os, "replace"),
    "shutil.rmtree": (shutil, "rmtree"),
    "atomic.exchange": (curata._internal.atomic, "_exchange"),
    "lance.write_dataset": (lance, "write_dataset"),
    "lance.write_fragments": (lance.fragment, "write_fragments"),
    "lance.commit": (lance.LanceDataset, "commit"),
    "lance.add_columns": (lance.LanceDataset, "add_columns"),
    "lance.drop_columns": (lance.LanceDataset, "drop_columns"),
    "lance.alter_columns": (lance.LanceDataset, "alter_columns"),
    "lance.update_config": (lance.LanceDataset, "update_config"),
    "lance.cleanup_old_versions": (lance.LanceDataset, "cleanup_old_versions"),
}
NATIVE = {name for name in TARGETS if name.startswith("lance.")}  # where "during" means inside Rust code
_DURING_DELAY_S = 0.002
KILLED = -signal.SIGKILL


def _die() -> None:
    if os.environ.get("FAULT_KILL_GROUP"):
        os.killpg(os.getpgrp(), signal.SIGKILL)  # as torchrun tears down every rank when one dies
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill: tuple[int, str] | None, trace: list[str]) -> None:
    """Wrap every target in this process: append each call's name to ``trace``; die at ``kill`` = (call, when)."""
    for name, (owner, attribute) in TARGETS.items():
        static = inspect.getattr_static(owner, attribute)
        real = getattr(owner, attribute)

        def wrapper(*args: Any, _name: str = name, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
            trace.append(_name)
            call = len(trace)
            if kill == (call, "before"):
                _die()
            if kill == (call, "during"):
                threading.Timer(_DURING_DELAY_S, _die).start()
            result = _real(*args, **kwargs)
            if kill == (call, "after"):
                _die()
            return result

        if isinstance(static, staticmethod):
            setattr(owner, attribute, staticmethod(wrapper))
        elif isinstance(static, classmethod):
            setattr(owner, attribute, classmethod(lambda cls, *a, _w=wrapper, **k: _w(*a, **k)))
        else:
            setattr(owner, attribute, wrapper)


def _child(job: Callable[..., Any], args: tuple[Any, ...], kill: tuple[int, str] | None, trace_file: str) -> None:
    trace: list[str] = []
    install(kill, trace)
    try:
        job(*args)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    finally:
        if trace_file != os.devnull:
            Path(trace_file).write_text(json.dumps(trace))
    os._exit(0)


_context: Any = None


def context() -> Any:
    """The forkserver context, its server preloading the job modules once."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["fault_jobs"])
        # Python 3.11's forkserver imports its preload before it applies the parent's sys.path
        before = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), before]))
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = before
    return _context


def run(
    job: Callable[..., Any], *args: Any, kill: tuple[int, str] | None = None, timeout: float = 120
) -> tuple[int, list[str]]:
    """Run ``job(*args)`` in a child; returns its exit code (``KILLED`` when the kill point was reached) and its
    trace of calls (the calls before the kill, for a killed run)."""
    trace_file = Path(args[0]) / f".trace-{os.getpid()}-{id(job)}-{kill}.json"
    process = context().Process(target=_child, args=(job, args, kill, str(trace_file)))
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        raise TimeoutError(f"{job.__name__}{args} with kill at {kill} did not finish in {timeout} s")
    trace = json.loads(trace_file.read_text()) if trace_file.exists() else []
    trace_file.unlink(missing_ok=True)
    return int(process.exitcode), trace


def start(job: Callable[..., Any], *args: Any) -> Any:
    """Start ``job(*args)`` in a child without waiting; ``join`` it and read its ``exitcode``."""
    process = context().Process(target=_child, args=(job, args, None, os.devnull))
    process.start()
    return process


def kill_points(trace: list[str]) -> list[tuple[int, str]]:
    """Every (call, when) of a trace: before and after each call, and during each call into Lance."""
    points = []
    for call, name in enumerate(trace, start=1):
        points += [(call, "before"), (call, "after")] + ([(call, "during")] if name in NATIVE else [])
    return points
