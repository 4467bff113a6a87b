"""The rankmap manager: `ros2 launch rankmap_ros rankmap.launch.py [params_file:=...] [namespace:=...]`.

The manager starts its executor nodes itself (one per pipeline stage), so this is the only node
to launch. Works on Humble and Jazzy (launch / launch_ros APIs common to both).
"""

# ruff: noqa: I001  (ruff takes launch/ for a first-party package: this folder is named launch)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("rankmap_ros"), "config", "rankmap.yaml"])
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="manager parameters (YAML)"),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the manager, its services and topics"
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error"),
            Node(
                package="rankmap_ros",
                executable="rankmap_manager",
                name="rankmap_manager",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file")],
                arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
