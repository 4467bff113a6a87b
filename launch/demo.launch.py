"""The 3-DNN demo: `ros2 launch rankmap_ros demo.launch.py [camera_rate:=30.0] [change_after:=20.0]`.

The manager (rankmap.launch.py), a synthetic 640x480 rgb8 camera on /camera/image_raw, and a
perception node that registers squeezenet_v2, mobilenet_v2 and shufflenet with priorities 3, 2, 1
and raises shufflenet's to 6 after `change_after` seconds. The manager's override arguments
(`platform`, `host_split`, `dnns_file`, `measurements_file`) pass through to rankmap.launch.py;
`use_sim_time` reaches every node.
Without ROS 2: `rankmap demo`.
"""

# ruff: noqa: I001  (ruff takes launch/ for a first-party package: this folder is named launch)
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

MANAGER_OVERRIDES = ("platform", "host_split", "dnns_file", "measurements_file")  # rankmap.launch.py's


def _nodes(context: LaunchContext) -> list[Node]:
    """The camera and perception node; `use_sim_time` reaches them only when given, so that an
    enclosing launch's `SetParameter(name="use_sim_time", ...)` is not overridden."""
    sim_time = LaunchConfiguration("use_sim_time").perform(context).strip().lower()
    if sim_time not in ("", "true", "false"):
        raise ValueError(f"use_sim_time must be true or false, not {sim_time!r}")
    clock = [{"use_sim_time": sim_time == "true"}] if sim_time else []
    return [
        Node(
            package="rankmap_ros",
            executable="rankmap_camera",
            name="camera",
            namespace="camera",
            # typed: `camera_rate:=30` would otherwise reach the double parameter as an integer
            parameters=[{"rate": ParameterValue(LaunchConfiguration("camera_rate"), value_type=float)}, *clock],
            output="screen",
        ),
        Node(
            package="rankmap_ros",
            executable="rankmap_perception_demo",
            name="perception_demo",
            parameters=[
                {
                    "input_topic": "/camera/image_raw",
                    "change_after": ParameterValue(LaunchConfiguration("change_after"), value_type=float),
                },
                *clock,
            ],
            output="screen",
        ),
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("rankmap_ros")
    manager = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "rankmap.launch.py"])),
        launch_arguments={
            name: LaunchConfiguration(name) for name in ("params_file", "use_sim_time", *MANAGER_OVERRIDES)
        }.items(),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "rankmap.yaml"]),
                description="manager parameters (YAML)",
            ),
            *(
                DeclareLaunchArgument(name, default_value="", description="see rankmap.launch.py")
                for name in MANAGER_OVERRIDES
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="", description="true: every node follows /clock; empty: left alone"
            ),
            DeclareLaunchArgument("camera_rate", default_value="30.0", description="camera frames/s"),
            DeclareLaunchArgument(
                "change_after", default_value="20.0", description="seconds until the priority change"
            ),
            manager,
            OpaqueFunction(function=_nodes),
        ]
    )
