"""Runtime apart from the lab: what a robot runs never imports what only evaluates, trains or demos.

(a) Statically: no module of the runtime (`vla_stack/core`, `vla_stack/ros`, `bringup.py`,
    `launch_helpers.py`, `paths.py`) imports `vla_stack.lab`, in any import form, including lazy
    imports inside functions. `vla_stack/cli.py` is the one entry point allowed to wire lab
    commands in.
(b) Dynamically: importing the runtime nodes and the policy backends (what inference executes)
    loads neither the lab, nor the simulator (`vla_stack.core.sim`), nor MuJoCo. `sim_node` is the
    simulator's own node and is exempt.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "vla_stack"
RUNTIME_DIRS = ("core", "ros")
RUNTIME_FILES = ("bringup.py", "launch_helpers.py", "paths.py")
LAB = "vla_stack.lab"

INFERENCE_MODULES = (
    "vla_stack.ros.action_expert_node",
    "vla_stack.ros.grounding_node",
    "vla_stack.ros.planner_node",
    "vla_stack.ros.safety_controller_node",
    "vla_stack.core.policy.backends",
    "vla_stack.core.policy.backends.builtin",
    "vla_stack.core.policy.backends.openpi",
)
"""What a robot imports to run inference: the runtime nodes (not sim_node) and every policy backend."""

SIMULATION_MODULES = ("vla_stack.lab", "vla_stack.core.sim", "mujoco")


def runtime_files(package: Path = PACKAGE) -> list[Path]:
    """Every Python file of the runtime under `package`."""
    files = [p for d in RUNTIME_DIRS for p in sorted((package / d).rglob("*.py"))]
    return files + [package / f for f in RUNTIME_FILES if (package / f).is_file()]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """Dotted module name of `path` inside the vla_stack package (for resolving relative imports)."""
    parts = ("vla_stack", *path.relative_to(package).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `source`, wherever it sits (module level, function, class).

    Covers `import a.b`, `from a.b import c` (also as `a.b.c`, since `c` may be a submodule),
    relative imports resolved against `module`, and `importlib.import_module("a.b")` /
    `__import__("a.b")` with a literal name.
    """
    base = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def lab_imports(files: list[Path], package: Path = PACKAGE) -> list[str]:
    """'file:line imports module' for every import of the lab among `files`."""
    offenders = []
    for path in files:
        module = module_name(path, package)
        for line, name in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            if name == LAB or name.startswith(LAB + "."):
                offenders.append(f"{path.relative_to(package)}:{line} imports {name}")
    return offenders


def test_runtime_never_imports_the_lab():
    files = runtime_files()
    assert len(files) > 50, f"runtime scan found only {len(files)} files: wrong root?"
    offenders = lab_imports(files)
    assert not offenders, (
        "runtime code (core/, ros/, bringup, launch_helpers, paths) must not import vla_stack.lab "
        "(only vla_stack/cli.py wires lab commands in):\n" + "\n".join(offenders)
    )


def test_the_scan_sees_every_import_form():
    """The scanner itself: module-level, lazy, aliased, relative and importlib imports of the lab are all caught."""
    source = (
        "import vla_stack.lab.demo_runner as d\n"
        "from vla_stack import lab\n"
        "def f():\n"
        "    from vla_stack.lab.policy import simulation\n"
        "    import importlib\n"
        "    importlib.import_module('vla_stack.lab.safety.replay')\n"
        "class C:\n"
        "    def g(self):\n"
        "        from ...lab import demo_runner\n"
    )
    names = [n for _line, n in imported_modules(source, "vla_stack.core.policy.x")]
    hits = [n for n in names if n == LAB or n.startswith(LAB + ".")]
    assert hits == [
        "vla_stack.lab.demo_runner", "vla_stack.lab", "vla_stack.lab.policy", "vla_stack.lab.policy.simulation",
        "vla_stack.lab.safety.replay", "vla_stack.lab", "vla_stack.lab.demo_runner",
    ]


def test_inference_loads_neither_lab_nor_simulator():
    code = (
        "import importlib, sys\n"
        f"for m in {INFERENCE_MODULES!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in {SIMULATION_MODULES!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.strip()
    assert loaded == "", f"importing the runtime nodes and policy backends loaded lab/simulator modules: {loaded}"
