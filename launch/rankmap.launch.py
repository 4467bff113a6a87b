"""The rankmap manager: `ros2 launch rankmap_ros rankmap.launch.py [params_file:=...] [namespace:=...]`.

The manager starts its executor nodes itself (one per pipeline stage), so this is the only node
to launch. The parameters a robot changes most (`platform`, `host_split`, `dnns_file`,
`measurements_file`) are also launch arguments; given, they override the parameters file, left
empty they leave its value alone. `use_sim_time:=true` (Gazebo, `ros2 bag play --clock`) stamps
the manager's messages with /clock time; its supervision and rates stay in wall time, the time its
executors compute in. `respawn:=true` restarts a manager that died after `respawn_delay`
seconds; its executors die with it, and perception nodes register their DNNs again (those of
`dnns_file` it registers itself). Works on Humble and Jazzy (launch / launch_ros APIs common to
both).
"""

# ruff: noqa: I001  (ruff takes launch/ for a first-party package: this folder is named launch)
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# launch argument (and manager parameter) -> description
OVERRIDES = {
    "platform": "'host' or a platform file (`rankmap calibrate`)",
    "host_split": "CPU clusters of the host, e.g. 'big:0-3,little:4-7'",
    "dnns_file": "DNNs to register at start (like config/dnns.yaml)",
    "measurements_file": "where the manager keeps what its mappings measured",
}


def _flag(context: LaunchContext, name: str, *, optional: bool = False) -> str:
    """'true', 'false' (or '' where `optional`), whatever the case; anything else stops the launch."""
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if value not in ("true", "false", *([""] if optional else [])):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def _manager(context: LaunchContext) -> list[Node]:
    """Only the arguments given reach the node, so an empty one keeps the parameters file's value."""
    given = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    # typed: launch_ros reads a bare value as YAML, where `1:30` is the integer 90 and `2024` a number
    overrides: dict[str, object] = {
        name: ParameterValue(value, value_type=str) for name, value in given.items() if value
    }
    sim_time = _flag(context, "use_sim_time", optional=True)
    if sim_time:
        overrides["use_sim_time"] = sim_time == "true"
    respawn = _flag(context, "respawn")
    delay = LaunchConfiguration("respawn_delay").perform(context)
    try:
        respawn_delay = float(delay)
    except ValueError:
        raise ValueError(f"respawn_delay must be a number of seconds, not {delay!r}") from None
    return [
        Node(
            package="rankmap_ros",
            executable="rankmap_manager",
            name="rankmap_manager",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), *([overrides] if overrides else [])],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
            output="screen",
            emulate_tty=True,
            respawn=respawn == "true",
            respawn_delay=respawn_delay,
            # launch's default sends SIGKILL 10 s after the shutdown began; stopping the executors,
            # their containers and shared memory can take longer on a loaded board
            sigterm_timeout="10",
            sigkill_timeout="10",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("rankmap_ros"), "config", "rankmap.yaml"])
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="manager parameters (YAML)"),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the manager, its services and topics"
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error"),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="",
                description="true: stamp with /clock time; empty: the parameters file's",
            ),
            DeclareLaunchArgument("respawn", default_value="false", description="restart the manager if it dies"),
            DeclareLaunchArgument("respawn_delay", default_value="2.0", description="seconds before a restart"),
            *(
                DeclareLaunchArgument(name, default_value="", description=f"{text}; empty: the parameters file's")
                for name, text in OVERRIDES.items()
            ),
            OpaqueFunction(function=_manager),
        ]
    )
