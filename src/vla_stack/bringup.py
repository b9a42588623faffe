"""Bring-up from one source of truth: profiles in `config/profiles/*.yaml`.

A profile lists the nodes of a setup: executable, node name, parameter files, remaps and extra
arguments. Two consumers read it through `load_profile`, so they cannot drift:

- `vla-stack up PROFILE` (no ROS install needed): `ProcessGroup` starts every node as its own OS
  process with exactly the command line `ros2 run vla_stack <executable> --ros-args ...` would
  run, prefixes its output with the node name, forwards Ctrl-C, reports a node that dies (and
  respawns it when the profile says so), and shuts everything down cleanly.
- `launch/<profile>.launch.py` (machines with ROS 2 launch): builds `launch_ros` Node actions
  from the same `NodeSpec`s.

Profile format::

    description: one line shown by `vla-stack up --list`
    environment: {FASTDDS_BUILTIN_TRANSPORTS: LARGE_DATA}   # defaults for every node (env wins;
                                                            # $CONFIG = this install's config/)
    nodes:
      - executable: sim_node          # console script / `ros2 run vla_stack <executable>`
        name: sim_node                # node name (default: executable)
        parameters: [sim_node.yaml]   # files relative to config/ (or absolute)
        overrides: {real_time_factor: 1.0}   # single parameters, applied after the files
        remappings: {joint_states: /robot/joint_states}
        arguments: []                 # extra argv before --ros-args
        respawn: false                # restart when it exits (after respawn_delay s)
        respawn_delay: 1.0
        rt_priority: 0                # > 0: run with SCHED_FIFO at this priority, as ros2_control's
                                      # controller manager does: the node applies it to itself at
                                      # start (VLA_STACK_RT_PRIORITY, see vla_stack.realtime); needs
                                      # root or CAP_SYS_NICE (otherwise a warning and normal scheduling)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vla_stack.paths import config_path

PACKAGE = "vla_stack"


@dataclass(frozen=True)
class NodeSpec:
    """One node of a profile; see the module docstring for the YAML keys."""

    executable: str
    name: str
    parameters: tuple[Path, ...] = ()
    overrides: Mapping[str, object] = field(default_factory=dict)
    remappings: Mapping[str, str] = field(default_factory=dict)
    arguments: tuple[str, ...] = ()
    respawn: bool = False
    respawn_delay: float = 1.0
    rt_priority: int = 0

    def ros_args(self, namespace: str = "", use_sim_time: bool | None = None) -> list[str]:
        """The `--ros-args ...` part of the command line (what `ros2 run` passes on)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if namespace:
            args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
        for path in self.parameters:
            args += ["--params-file", str(path)]
        for key, value in self.overrides.items():
            args += ["-p", f"{key}:={_param_literal(value)}"]
        if use_sim_time is not None:
            args += ["-p", f"use_sim_time:={'true' if use_sim_time else 'false'}"]
        for src, dst in self.remappings.items():
            args += ["-r", f"{src}:={dst}"]
        return args

    def process_environment(self) -> dict[str, str]:
        """Environment variables this node's process needs on top of the stack's (both bring-up paths).

        `VLA_STACK_RT_PRIORITY` when the profile asks for real-time priority: the node applies it to
        itself (`vla_stack.realtime.apply_realtime_priority`), so no `chrt` prefix is needed and a
        machine without CAP_SYS_NICE gets a warning instead of a dead node.
        """
        from vla_stack.realtime import RT_PRIORITY_ENV

        return {RT_PRIORITY_ENV: str(self.rt_priority)} if self.rt_priority > 0 else {}


@dataclass(frozen=True)
class Profile:
    """A named set of nodes with shared environment defaults."""

    name: str
    description: str
    nodes: tuple[NodeSpec, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None


def _param_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_literal(v) for v in value) + "]"
    if isinstance(value, str):
        # `-p key:=value` parses value as YAML: quote strings that would read as something else
        # ('' , 'true', '3', '{}', 'a: b') so a string parameter stays a string
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return value if plain and value.strip() == value and value else "'" + value.replace("'", "''") + "'"
    return str(value)


def node_parameters(path: str | os.PathLike, node_name: str) -> dict[str, object]:
    """The `ros__parameters` a ROS 2 parameter file gives the node `node_name`, in any namespace.

    Shipped files are keyed `/**/<node_name>:` (rcl's "any namespace" wildcard, so a node started
    under `robot1/` still gets them); this also accepts the bare `<node_name>:` and `/ns/<node_name>:`
    forms and `/**:` (every node). Sections are merged in file order, as rcl applies them.
    Returns {} when no section matches. Keys are the file's (dotted) parameter names.
    """
    import fnmatch

    data = yaml.safe_load(Path(path).read_text()) or {}
    merged: dict[str, object] = {}
    for key, section in data.items():
        last = str(key).strip("/").split("/")[-1]
        if last in ("*", "**") or fnmatch.fnmatchcase(node_name, last):
            merged.update((section or {}).get("ros__parameters", {}) or {})
    return merged


def profiles_dir() -> Path:
    """config/profiles of this installation."""
    return config_path("profiles")


def profile_names() -> list[str]:
    """Names of the profiles shipped in config/profiles."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Read a profile by name (config/profiles/<name>.yaml) or by path.

    Raises FileNotFoundError naming the known profiles, or ValueError naming the bad key.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no profile '{name_or_path}' (looked for {path}); known: {profile_names()}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise ValueError(f"profile {path}: 'nodes' must be a non-empty list")
    allowed = {"executable", "name", "parameters", "overrides", "remappings", "arguments", "respawn", "respawn_delay",
               "rt_priority"}
    nodes = []
    for i, entry in enumerate(data["nodes"]):
        if not isinstance(entry, dict) or "executable" not in entry:
            raise ValueError(f"profile {path}: node #{i} needs an 'executable'")
        unknown = set(entry) - allowed
        if unknown:
            raise ValueError(f"profile {path}: node '{entry['executable']}' has unknown key(s) {sorted(unknown)}")
        params = []
        for p in entry.get("parameters", []) or []:
            pp = Path(p)
            params.append(pp if pp.is_absolute() else config_path(p))
        for p in params:
            if not p.is_file():
                raise FileNotFoundError(f"profile {path}: parameter file {p} does not exist")
        nodes.append(
            NodeSpec(
                executable=entry["executable"],
                name=entry.get("name", entry["executable"]),
                parameters=tuple(params),
                overrides=dict(entry.get("overrides", {}) or {}),
                remappings={str(k): str(v) for k, v in (entry.get("remappings", {}) or {}).items()},
                arguments=tuple(str(a) for a in entry.get("arguments", []) or []),
                respawn=bool(entry.get("respawn", False)),
                respawn_delay=float(entry.get("respawn_delay", 1.0)),
                rt_priority=int(entry.get("rt_priority", 0)),
            )
        )
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError(f"profile {path}: node names must be unique, got {names}")
    # `$CONFIG` in environment values stands for this installation's config/ directory
    env = {str(k): str(v).replace("$CONFIG", str(config_path())) for k, v in (data.get("environment", {}) or {}).items()}
    return Profile(path.stem, str(data.get("description", "")), tuple(nodes), env, path)


LAB_NODE_EXECUTABLES = frozenset({"scripted_pick_node"})
"""Node executables whose module lives in `vla_stack.lab` (as in setup.py's LAB_NODES), not `vla_stack.ros`."""


def executable_path(executable: str) -> list[str]:
    """argv prefix that runs a node executable the way `ros2 run vla_stack <executable>` does.

    The console script next to the running interpreter (pip/venv install), then
    `<prefix>/lib/vla_stack/<executable>` (colcon install), then `python -m vla_stack.ros.<executable>`
    (source checkout without install; `vla_stack.lab.<executable>` for the lab's nodes).
    """
    bindir = Path(sys.executable).parent
    for candidate in (bindir / executable, Path(sys.prefix) / "lib" / PACKAGE / executable):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which(executable)
    if found:
        return [found]
    room = "lab" if executable in LAB_NODE_EXECUTABLES else "ros"
    return [sys.executable, "-m", f"{PACKAGE}.{room}.{executable}"]


def node_command(spec: NodeSpec, namespace: str = "", use_sim_time: bool | None = None) -> list[str]:
    """Full argv of one node."""
    return executable_path(spec.executable) + list(spec.arguments) + spec.ros_args(namespace, use_sim_time)


def localhost_dds_environment() -> dict[str, str]:
    """DDS settings for a stack that lives on one machine (simulation, tests, benchmarks).

    Shared-memory transport with large segments (640x480 images arrive whole, best effort
    loses nothing: bench/transport.py) and discovery on 127.0.0.1 only, no multicast.
    """
    return {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(config_path("dds", "fastdds_localhost_shm.xml")),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
    }


RUN_ID_ENV = "VLA_STACK_RUN_ID"
"""Environment variable naming one bring-up (`vla-stack up`, `ros2 launch`, the demo): set once per
bring-up, shared by every node and kept across respawns. The planner resumes a saved task only
when it was saved under the same run id (see planner_node `resume_file`)."""


def new_run_id() -> str:
    """A fresh bring-up id: UTC start time (readable in logs) + random suffix (unique)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def stack_environment(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for stack processes: `base` (default os.environ) plus defaults it lacks.

    Defaults: HOME/ROS_LOG_DIR so rclpy can start, MUJOCO_GL=egl for headless rendering,
    unbuffered output. DDS transport settings come from the profile's `environment` (the sim
    profile uses `localhost_dds_environment()`'s values, robot profiles LARGE_DATA).
    """
    env = dict(os.environ if base is None else base)
    defaults = {
        "MUJOCO_GL": "egl",
        "PYTHONUNBUFFERED": "1",
        "RCUTILS_COLORIZED_OUTPUT": "0",
    }
    defaults.update(extra or {})
    for key, value in defaults.items():
        env.setdefault(key, value)
    if "HOME" not in env and "ROS_LOG_DIR" not in env:
        env["ROS_LOG_DIR"] = str(Path.cwd() / ".ros_log")
    return env


class ManagedProcess:
    """One node process: started in its own session, output prefixed with its name."""

    def __init__(self, spec: NodeSpec, argv: list[str], env: Mapping[str, str], sink: Callable[[str], None]) -> None:
        self.spec, self.argv, self.env, self.sink = spec, argv, dict(env), sink
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.exit_code: int | None = None
        self._reader: threading.Thread | None = None
        self.output: list[str] = []

    def start(self) -> None:
        """Start the process (its own session: a terminal Ctrl-C reaches only the supervisor)."""
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, text=True, bufsize=1,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            if len(self.output) > 2000:
                del self.output[:1000]
            self.sink(f"[{self.spec.name}] {line}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        """Exit code, or None while running."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send `sig` to the node's process group (the node and anything it spawned)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            self.signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        return self.proc.poll()


class ProcessGroup:
    """Starts, supervises and stops the nodes of a profile.

    Args:
        profile: what to start.
        namespace: ROS namespace for every node ("" = none).
        use_sim_time: force use_sim_time on every node (None = leave to parameter files).
        sink: where prefixed output lines go (default: print).
        env: extra environment for every node (after the profile's defaults).
    """

    def __init__(
        self,
        profile: Profile,
        namespace: str = "",
        use_sim_time: bool | None = None,
        sink: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
        only: Sequence[str] | None = None,
    ) -> None:
        self.profile = profile
        self.sink = sink or (lambda line: print(line, flush=True))
        merged = dict(profile.environment)
        merged.update(env or {})
        self.env = stack_environment(merged)
        for key, value in (env or {}).items():
            self.env[key] = value
        # one id per bring-up (a new one even if the calling shell has one), unless `env` names it
        self.env[RUN_ID_ENV] = str((env or {}).get(RUN_ID_ENV) or new_run_id())
        specs = [n for n in profile.nodes if only is None or n.name in only]
        self.processes = [
            ManagedProcess(s, node_command(s, namespace, use_sim_time), {**self.env, **s.process_environment()}, self.sink)
            for s in specs
        ]
        self.failures: list[tuple[str, int]] = []
        self._respawn_at: dict[str, float] = {}

    def start(self) -> None:
        """Start every node."""
        for p in self.processes:
            self.sink(f"[up] starting {p.spec.name}: {' '.join(p.argv)}")
            p.start()

    def check(self) -> list[tuple[str, int]]:
        """Report nodes that exited since the last check; respawn those whose profile says so.

        Returns the (name, exit code) pairs newly seen dead.
        """
        died = []
        now = time.monotonic()
        for p in self.processes:
            code = p.poll()
            name = p.spec.name
            if code is None:
                continue
            if name in self._respawn_at:
                if now >= self._respawn_at[name]:
                    del self._respawn_at[name]
                    p.restarts += 1
                    self.sink(f"[up] respawning {name} (restart #{p.restarts})")
                    p.start()
                continue
            died.append((name, code))
            self.failures.append((name, code))
            self.sink(f"[up] node {name} exited with code {code}" + (f"; respawning in {p.spec.respawn_delay:.1f} s" if p.spec.respawn else ""))
            if p.spec.respawn:
                self._respawn_at[name] = now + p.spec.respawn_delay
            else:
                p.exit_code, p.proc = code, None  # reported once; stays down
        return died

    def running(self) -> list[str]:
        """Names of nodes currently running."""
        return [p.spec.name for p in self.processes if p.poll() is None and p.proc is not None]

    def stop(self, timeout: float = 10.0) -> dict[str, int | None]:
        """Stop every node (Ctrl-C first, so nodes shut down cleanly); returns exit codes."""
        for p in self.processes:
            p.signal(signal.SIGINT)
        return {p.spec.name: p.stop(timeout) for p in self.processes}

    def process(self, name: str) -> ManagedProcess:
        """The managed process of node `name`."""
        for p in self.processes:
            if p.spec.name == name:
                return p
        raise KeyError(f"no node '{name}' in profile {self.profile.name}")


def run_profile(
    profile: Profile, namespace: str = "", use_sim_time: bool | None = None, duration: float | None = None,
    exit_on_failure: bool = False,
) -> int:
    """Blocking `vla-stack up`: start, supervise until Ctrl-C/SIGTERM (or `duration` s), stop.

    Returns 0 on a clean shutdown, 1 when a node died and `exit_on_failure` is set.
    """
    group = ProcessGroup(profile, namespace, use_sim_time)
    stop = threading.Event()

    def on_signal(signum, _frame):
        group.sink(f"[up] {signal.Signals(signum).name} received: shutting down {len(group.processes)} node(s)")
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        group.start()
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            if group.check() and exit_on_failure:
                code = 1
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.2)
    finally:
        codes = group.stop()
        group.sink("[up] stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
        for s, h in old.items():
            signal.signal(s, h)
    return code
