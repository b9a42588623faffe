"""vla_stack: run vision-language-action policies safely on ROS 2 robots."""

__version__ = "0.1.0"
