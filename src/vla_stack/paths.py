"""Where the package's data (config/, launch/) lives, however it was installed.

colcon/ament install: `share/vla_stack` found through ament_index. pip (non-editable):
`<prefix>/share/vla_stack`. Editable install or a plain checkout: the source tree.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "vla_stack"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """Directory that holds `config/` and `launch/` for this installation."""
    # A checkout wins: a developer editing config/ expects the edit to be used.
    if (SOURCE_ROOT / "package.xml").is_file() and (SOURCE_ROOT / "config").is_dir():
        return SOURCE_ROOT
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    prefixed = Path(sys.prefix) / "share" / PACKAGE
    if (prefixed / "config").is_dir():
        return prefixed
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} share directory (config/, launch/): not a source checkout, "
        f"not in the ament index, not under {prefixed}"
    )


def config_path(*parts: str) -> Path:
    """A path under the package's config/ directory (existence not checked)."""
    return share_dir().joinpath("config", *parts)


def data_home(create: bool = True) -> Path:
    """The user's writable data directory (created when missing, unless `create` is False): enrolled
    personal objects, model cache.

    `$VLA_STACK_HOME` (set by `vla-stack --data-dir DIR` for the command and the nodes it starts),
    else `~/.vla_stack`. Never inside the installation: `share/vla_stack` (config/) is read-only
    data that a rebuild or reinstall replaces.
    """
    import os

    base = Path(os.environ.get("VLA_STACK_HOME") or Path.home() / ".vla_stack").expanduser()
    if create:
        base.mkdir(parents=True, exist_ok=True)
    return base
