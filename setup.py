"""ament_python package `vla_stack`.

Installs the same way with pip (into a plain venv beside the ROS 2 wheels from PyPI)
and with colcon on a ROS 2 install. Node executables are console scripts, so both
`ros2 run vla_stack <node>` and `vla-stack up PROFILE` start exactly the same thing.
"""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vla_stack"

# One console script per node; `vla-stack up` and launch files refer to these names.
NODES = [
    "sim_node",
    "camera_node",
    "tactile_node",
    "safety_controller_node",
    "action_expert_node",
    "planner_node",
    "recorder_node",
    "grounding_node",
]
# Nodes of the lab (evaluation baselines, never part of a robot's stack): same console scripts, module in vla_stack.lab.
LAB_NODES = ["scripted_pick_node"]


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries that install `folder` under share/vla_stack, keeping subfolders."""
    entries = []
    for root, _dirs, files in os.walk(folder):
        paths = [os.path.join(root, f) for f in files]
        if paths:
            entries.append((os.path.join("share", PACKAGE, root), paths))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={PACKAGE: ["py.typed", "policy_checkpoints/*/*", "core/grounding/data/*.npz"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
        (os.path.join("share", PACKAGE, "launch"), glob("launch/*.launch.py")),
        *tree("config"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="vla_stack maintainers",
    maintainer_email="maintainers@vla-stack.invalid",
    description="ROS 2 stack that runs vision-language-action policies safely on lab robots.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{n} = {PACKAGE}.ros.{n}:main" for n in NODES]
        + [f"{n} = {PACKAGE}.lab.{n}:main" for n in LAB_NODES]
        + ["vla-stack = vla_stack.cli:main"],
    },
)
