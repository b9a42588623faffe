# Robot PC image: ROS 2 Jazzy (Ubuntu 24.04) with vla_stack built by colcon, using the system rclpy.
#
#   docker build -f docker/robot-pc.Dockerfile -t vla_stack:jazzy .
#   docker run --rm -it --net=host --ipc=host vla_stack:jazzy ros2 launch vla_stack sim.launch.py
#
# NOTE: not built in this project's CI (the CI machines have no Docker engine); it is the
# recipe for requirement (b) of issue 2 (colcon build + ros2 run/launch on Jazzy, unchanged).
FROM ros:jazzy-ros-base

ENV DEBIAN_FRONTEND=noninteractive MUJOCO_GL=egl PIP_BREAK_SYSTEM_PACKAGES=1
RUN apt-get update && apt-get install -y --no-install-recommends \
      python3-pip python3-numpy python3-yaml python3-opencv python3-colcon-common-extensions \
      ros-jazzy-launch-ros ros-jazzy-diagnostic-msgs ros-jazzy-visualization-msgs ros-jazzy-nav-msgs \
      libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libgles2 libusb-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws/src/vla_stack
COPY requirements.txt requirements-ml.txt ./
# Everything except the ros-* wheels: on a ROS install, rclpy and the messages come from the distro.
RUN grep -v '^ros-' requirements.txt > /tmp/req.txt \
    && pip3 install --no-cache-dir -r /tmp/req.txt \
    && pip3 install --no-cache-dir -r requirements-ml.txt
# (torch==2.13.0 from PyPI is the CUDA build, several GB; for a CPU-only robot PC point pip at
#  PyTorch's CPU wheel index for that one package.)
COPY . .
WORKDIR /ws
RUN . /opt/ros/jazzy/setup.sh && colcon build --packages-select vla_stack
RUN echo 'source /opt/ros/jazzy/setup.bash && source /ws/install/setup.bash' >> /root/.bashrc
ENTRYPOINT ["/bin/bash", "-c", "source /opt/ros/jazzy/setup.bash && source /ws/install/setup.bash && exec \"$@\"", "--"]
CMD ["ros2", "launch", "vla_stack", "sim.launch.py"]
