"""core/ must never import rclpy or a message package: it is what runs without ROS."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "vla_stack" / "core"
FORBIDDEN_PREFIXES = ("rclpy", "std_srvs", "rosidl", "rosgraph_msgs", "builtin_interfaces", "launch", "launch_ros")


def _forbidden(module: str) -> bool:
    top = module.split(".")[0]
    return top.startswith(FORBIDDEN_PREFIXES) or top.endswith("_msgs") or top.endswith("_interfaces")


def test_no_core_module_imports_ros():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert files, "core/ has no modules?"
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE)}:{node.lineno} imports {n}" for n in names if _forbidden(n)]
    assert not offenders, "core/ must stay ROS-free:\n" + "\n".join(offenders)


def test_importing_core_loads_no_ros_module():
    """Dynamic check: importing every core module pulls in no ROS module (catches indirect imports)."""
    modules = [
        "vla_stack.core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in sorted(CORE.rglob("*.py")) if p.name != "__init__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0].startswith(('rclpy', 'rosidl')) or m.split('.')[0].endswith('_msgs'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing core pulled in ROS modules: {out.stdout.strip()}"
