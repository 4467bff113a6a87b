"""An rclpy-compatible subset over Cyclone DDS, used where rclpy is not installed.

`rclpy_api` stands in for the `rclpy` module itself; node code never imports it directly but
goes through `rankmap_ros.ros.rclpy_compat`, which picks real rclpy when it can. This file stays
empty so that the modules without Cyclone DDS or rosbags behind them (`names`, `args`,
`logging`), which the `rankmap` command uses beside real rclpy too, import on a ROS 2 machine
that has neither.
"""
