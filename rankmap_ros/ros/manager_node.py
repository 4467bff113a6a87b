"""The manager node: registrations in, a RankMap plan out, one executor node per pipeline stage.

Executor nodes run in a process each (`executor: stage`), or composed into one container process
per component (`executor: component`), whose single loop orders and preempts its stages' jobs.

Services answer at once (validation only; a refused request changes nothing). Planning runs in
its own thread whenever the registrations, the priorities or a DNN's measured shortfall call for
it; the result is applied by stopping the chains whose stages changed and starting new ones
(unchanged chains keep running). A supervisor timer restarts dead or hung executors and, when a
component keeps failing, re-plans without it. The mapping in force is published transient-local.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rankmap_ros.core.correction import Observations
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.realtime import Policy, RealTimeError, parse_policy
from rankmap_ros.ros import diagnostics, endpoints, image_codec, planning, results
from rankmap_ros.ros.dds.args import params_file_values
from rankmap_ros.ros.diagnostics import Status
from rankmap_ros.ros.dnns_file import register_file
from rankmap_ros.ros.parent import follow_parent
from rankmap_ros.ros.rclpy_compat import (
    Clock,
    ClockType,
    DurabilityPolicy,
    ExternalShutdownException,
    FloatingPointRange,
    IntegerRange,
    MultiThreadedExecutor,
    MutuallyExclusiveCallbackGroup,
    Node,
    ParameterDescriptor,
    ParameterException,
    QoSProfile,
    ReentrantCallbackGroup,
    msg,
    rclpy,
    srv,
)
from rankmap_ros.ros.registry import Registration, Registry, RequestError, resolve_model
from rankmap_ros.ros.supervisor import (
    EXECUTORS,
    RATE_WINDOW_S,
    Arbiters,
    Chain,
    ChainConfig,
    Containers,
    Failure,
    StageKey,
    check_chain,
    start_chain,
    stop_chain,
    stop_chains,
)
from rankmap_ros.runtime import shm
from rankmap_ros.runtime.board import StageState
from rankmap_ros.runtime.errors import HostRuntimeError
from rankmap_ros.runtime.host import unpinned_warning
from rankmap_ros.runtime.stage import boundary_shapes, stage_threads

MAPPING_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
Float64 = msg("std_msgs/msg/Float64")
FAILURE_WINDOW_S = 60.0
# Start errors that follow the DNN wherever it runs (its model file or its card, e.g. replaced by a
# corrupt one after registration), not the component: restarting cannot help, and counting them
# against the component would drop healthy components one after another.
DNN_FAULTS = ("ZooError:", "ModelCardError:")
SUPERVISE_PERIOD_S = 0.25
REFUSAL_CHARS = 600
# A chain that failed more than max_failures times within FAILURE_WINDOW_S (a crash loop the
# manager cannot plan around, e.g. on its last component) waits 2, 4, 8 ... s before it starts
# again, so that it does not spend the cores on starting processes that die.
RESTART_BACKOFF_MAX_S = 60.0
# A re-plan for a DNN below its minimum rate at most this often: each one restarts chains.
STARVATION_COOLDOWN_S = 30.0
INPUT_RELIABILITY = ("best_effort", "reliable")
INPUT_CHANGE = 0.25  # a sensor's measured rate moving by this share is noted for the next plan
INPUT_WAIT_S = 10.0  # longest a binding input rate waits for another DNN's first one (a start, then a window)
# A real-time DNN missing more than this fraction of its deadlines is reported WARN (issue 7).
MAX_MISS_RATE = 0.01


def _float_range(low: float, high: float) -> list[Any]:
    return [FloatingPointRange(from_value=low, to_value=high)]


def _int_range(low: int, high: int) -> list[Any]:
    return [IntegerRange(from_value=low, to_value=high)]


# as a parameters file must write them: rclpy refuses 2 for a float parameter
KINDS = {
    bool: "true or false",
    int: "an integer",
    float: "a floating-point number (write 2.0, not 2)",
    str: "a string",
    list: "a list of strings",
}
# every node's own, which a manager's section of a parameters file may set too
NODE_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})

# name, default, description, extra descriptor fields (read-only unless said otherwise)
PARAMETERS: tuple[tuple[str, Any, str, dict[str, Any]], ...] = (
    ("platform", "host", "'host' (discovered now) or a platform file, e.g. one written by `rankmap calibrate`", {}),
    ("host_split", "", "CPU clusters of the host, e.g. 'big:0,little:1'; empty: discovered by cpufreq", {}),
    ("opencl_cpu_as_gpu", False, "present an OpenCL CPU device (PoCL) as the 'gpu' component", {}),
    ("planner", "rankmap", "rankmap, omniboost or gpu (all on the reference component)", {}),
    ("priority_mode", "static", "static (registered weights) or dynamic (from each DNN's profile)", {}),
    (
        "estimator_checkpoint",
        "",
        "learned estimator checkpoint; empty: the one shipped for the platform if it fits, else the simulator",
        {},
    ),
    (
        "scheduling_policy",
        "time_sharing",
        "order of stages sharing a component: time_sharing (the OS), fifo, rms, dms, np_edf or edf "
        "(preemptive EDF at unit boundaries: use it with real-time DNNs)",
        {},
    ),
    (
        "executor",
        "stage",
        "stage: one process per stage executor node; component: the stage nodes of a component share "
        "one container process whose single loop runs their jobs (ROS composition: preempting costs a "
        "function return, not a process switch); needs an arbitrated scheduling_policy",
        {},
    ),
    (
        "drop_late_jobs",
        True,
        "under an arbitrated policy, drop a real-time job once it can no longer meet its deadline",
        {},
    ),
    (
        "plan_with_input_rates",
        True,
        "plan each best-effort DNN with its sensor's measured rate: capacity beyond it goes to the others",
        {},
    ),
    ("search_simulations", 300, "planner budget: mappings evaluated", {"integer_range": _int_range(1, 1_000_000)}),
    ("search_time_limit", 1.0, "planner budget: seconds", {"floating_point_range": _float_range(0.01, 600.0)}),
    (
        "starvation_threshold",
        0.1,
        "a DNN below this share of its isolated rate is starved",
        {"floating_point_range": _float_range(0.0, 0.99)},
    ),
    (
        "starvation_grace",
        5.0,
        "seconds a DNN may stay below its minimum before a re-plan",
        {"floating_point_range": _float_range(0.5, 600.0)},
    ),
    ("allowed_model_dirs", [""], "directories model files may be registered from", {}),
    (
        "measurements_file",
        "",
        "JSON file of what the mappings measured against the model, kept across restarts (empty: not kept)",
        {},
    ),
    (
        "dnns_file",
        "",
        "YAML file of DNNs to register at start, each with RegisterDnn's fields; empty: none",
        {},
    ),
    ("max_dnns", 5, "most DNNs registered at once", {"integer_range": _int_range(1, 5)}),
    (
        "hung_timeout",
        10.0,
        "seconds without progress before an executor counts as hung",
        {"floating_point_range": _float_range(1.0, 600.0)},
    ),
    (
        "start_timeout",
        60.0,
        "seconds an executor may take to become ready",
        {"floating_point_range": _float_range(5.0, 600.0)},
    ),
    (
        "max_failures",
        3,
        "failures of one component within a minute before re-planning without it; a DNN restarted more "
        "often waits 2, 4, 8 ... s before its next start",
        {"integer_range": _int_range(1, 100)},
    ),
    (
        "qos.input_reliability",
        "best_effort",
        "first stages' image subscription: best_effort (sensor data) or reliable",
        {},
    ),
    ("qos.input_depth", 5, "first stages' image queue depth", {"integer_range": _int_range(1, 100)}),
    ("qos.results_depth", 10, "result publishers' queue depth (reliable)", {"integer_range": _int_range(1, 1000)}),
    (
        "compute_niceness",
        5,
        "niceness of the executors' compute threads (0-19): above it, their transport threads, cameras "
        "and other nodes get a saturated core first",
        {"integer_range": _int_range(0, 19)},
    ),
    (
        "diagnostics_period",
        1.0,
        "seconds between /diagnostics arrays; at most 2.5, half the aggregator's 5 s stale timeout",
        {"floating_point_range": _float_range(0.1, 2.5)},
    ),
)


def check_choices(v: dict[str, Any]) -> Policy:
    """The values a descriptor cannot say: one of a few words, and which go together; returns the
    scheduling policy."""
    for key, allowed in (
        ("planner", planning.PLANNERS),
        ("priority_mode", planning.MODES),
        ("qos.input_reliability", INPUT_RELIABILITY),
    ):
        if v[key] not in allowed:
            raise ValueError(f"parameter {key} must be one of {', '.join(allowed)}, got {v[key]!r}")
    try:
        policy = parse_policy(v["scheduling_policy"])
    except RealTimeError as exc:
        raise ValueError(f"parameter scheduling_policy: {exc}") from exc
    if v["executor"] not in EXECUTORS:
        raise ValueError(f"parameter executor must be one of {', '.join(EXECUTORS)}, got {v['executor']!r}")
    if v["executor"] == "component" and not policy.arbitrated:
        raise ValueError(
            "parameter executor: component needs an arbitrated scheduling_policy (fifo, rms, dms, np_edf "
            f"or edf), not {policy.value}: its loop is the component's scheduler"
        )
    return policy


def check_parameters(given: dict[str, Any], named: Collection[str] | None = None) -> dict[str, Any]:
    """The manager's parameters from a parameters file checked as rclpy and the manager would check
    them at start (type as declared, descriptor range, choices), without starting anything.

    Returns every parameter's value, defaults filled in. An unknown name among `named` (those
    given for the manager itself; default all) is refused: rclpy would drop it without a word, so
    a misspelt `max_dnn` would silently keep the default. Others (a `/**:` section's settings for
    every node, a camera's `rate`) are not the manager's business.
    """
    known = {name: (default, extra) for name, default, _, extra in PARAMETERS}
    unknown = sorted(set(given if named is None else named) - set(known) - NODE_PARAMETERS)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a parameter of the manager (misspelt?)")
    values = {name: given.get(name, default) for name, (default, _) in known.items()}
    for name, (default, extra) in known.items():
        value = values[name]
        kind = type(default)
        if kind is list:
            fits = isinstance(value, list) and all(isinstance(item, str) for item in value)
        else:
            fits = type(value) is kind
        if not fits:
            raise ValueError(f"parameter {name} must be {KINDS[kind]}, got {value!r}")
        for bounds in (*extra.get("integer_range", ()), *extra.get("floating_point_range", ())):
            if not (bounds.from_value <= value <= bounds.to_value):
                raise ValueError(f"parameter {name} must be from {bounds.from_value} to {bounds.to_value}, got {value}")
    check_choices(values)
    return values


def check_parameters_file(path: str, fq_name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`check_parameters` on what a parameters file (empty: none) and command-line `-p` values
    give the manager `fq_name`, the file read once. Raises RosArgumentError or ValueError."""
    named: set[str] = set()
    given = params_file_values(Path(path), fq_name, named) if path else {}
    given.update(overrides or {})
    return check_parameters(given, named | set(overrides or {}))


@dataclass
class PlanInForce:
    mapping: Mapping | None
    predicted: dict[str, float]
    priorities: dict[str, float]
    planner: str
    seconds: float
    base_predicted: dict[str, float]
    base_model: str = ""
    applied: float = 0.0  # time.monotonic() when its chains were started
    measured: bool = False  # its rates have been noted against base_predicted
    errors: dict[str, float] = field(default_factory=dict)  # as noted: measured / base_predicted - 1


def stages_of(mapping: Mapping, name: str) -> tuple[StageKey, ...]:
    return tuple((s.start, s.stop, s.component) for s in mapping[name].stages)


class Manager(Node):
    def __init__(self) -> None:
        super().__init__("rankmap_manager")
        for name, default, text, extra in PARAMETERS:
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True, **extra))
        v = {name: self.get_parameter(name).value for name, *_ in PARAMETERS}
        self.v = v
        self.policy = check_choices(v)  # types and ranges: the descriptors, checked by rclpy
        self.composed = v["executor"] == "component"
        shm.remove_stale()
        if foreign := shm.stale_entries():
            self.get_logger().warning(
                f"{len(foreign)} shared-memory entries of dead rankmap processes belong to another user and stay "
                f"(remove them as that user, e.g. sudo rm /dev/shm/{foreign[0]}): {', '.join(foreign[:3])}"
            )
        self.platform = planning.load_platform(v["platform"], v["host_split"], v["opencl_cpu_as_gpu"])
        discovered = v["platform"] == "host"
        if v["host_split"] and not discovered:
            self.get_logger().warning(
                f"parameter host_split is ignored: platform {v['platform']} names its components' CPUs itself"
            )
        unpinned = unpinned_warning(self.platform)
        if unpinned:
            self.get_logger().warning(f"{unpinned} ({'parameter host_split' if discovered else v['platform']})")
        self.model = planning.throughput_model(self.platform, v["estimator_checkpoint"])
        self.settings = planning.PlanSettings(
            planner=v["planner"],
            simulations=v["search_simulations"],
            time_limit_s=v["search_time_limit"],
            min_potential=v["starvation_threshold"],
            policy=self.policy.value,
        )
        self.registry = Registry(v["max_dnns"], self.platform, self.resolve_topic_name)
        self.registry.mode = v["priority_mode"]
        self.hinted = False  # the executor hint is logged once
        # before anything the manager owns exists: a bad file stops the start with nothing to undo
        started_with = self._register_from_file(v["dnns_file"]) if v["dnns_file"] else 0
        # Under the component executor each container's loop is its component's arbiter.
        self.arbiters = None if self.composed else Arbiters(self.platform, self.policy)
        self.containers = (
            Containers(self.policy.value, self.get_namespace(), v["compute_niceness"], self._log_level())
            if self.composed
            else None
        )
        self.lock = threading.RLock()
        self.plan = PlanInForce(None, {}, {}, v["planner"], 0.0, {})
        self.chains: dict[str, Chain] = {}
        self.failures: list[tuple[float, str, int]] = []  # (time, component, pid)
        self.restart_times: dict[str, list[float]] = {}  # DNN -> its chain's recent restarts
        self.waiting: dict[str, Chain] = {}  # stopped chains waiting out their restart backoff
        self.stopping: set[str] = set()  # unregistered DNNs whose executors are still stopping
        self.backoff: dict[str, float] = {}  # DNN -> its last backoff delay (doubles while it keeps failing)
        self.excluded: set[str] = set()
        self.parked: dict[str, str] = {}  # registered DNNs that cannot run as registered -> why
        # what mappings measured against the model's prediction: every plan is corrected by it
        self.measured = Observations(self.platform.component_names)
        self.measurements_file = v["measurements_file"]
        if self.measurements_file:
            try:
                self.measured, problem = planning.load_measurements(self.measurements_file, self.platform)
            except OSError as exc:  # unreadable and immovable: run, but keep nothing
                self.get_logger().error(f"{exc}; measurements kept in memory only")
                self.measurements_file, problem = "", None
            if problem:
                self.get_logger().warning(problem)
            elif len(self.measured):
                self.get_logger().info(
                    f"planning with {len(self.measured)} measured mapping(s) of {v['measurements_file']}"
                )
        self.below_since: dict[str, float] = {}
        self.last_starvation_plan = -math.inf
        self.input_rates: dict[str, float] = {}  # measured images/s of each DNN's sensor, as planned with
        self.last_input_plan = -math.inf
        self.input_wait_since: float | None = None  # a binding input rate waits for a DNN's first
        self.generation = 0
        self.wake = threading.Event()
        self.closing = False

        services = ReentrantCallbackGroup()
        self.create_service(
            srv(endpoints.REGISTER_TYPE),
            self._rel(endpoints.REGISTER_SERVICE),
            self.on_register,
            callback_group=services,
        )
        self.create_service(
            srv(endpoints.UNREGISTER_TYPE),
            self._rel(endpoints.UNREGISTER_SERVICE),
            self.on_unregister,
            callback_group=services,
        )
        self.create_service(
            srv(endpoints.SET_PRIORITIES_TYPE),
            self._rel(endpoints.SET_PRIORITIES_SERVICE),
            self.on_set_priorities,
            callback_group=services,
        )
        self.create_service(
            srv(endpoints.STATUS_TYPE), self._rel(endpoints.STATUS_SERVICE), self.on_status, callback_group=services
        )
        self.mapping_pub = self.create_publisher(
            msg(endpoints.MAPPING_TYPE), self._rel(endpoints.MAPPING_TOPIC), MAPPING_QOS
        )
        self.rate_pub = self.create_publisher(msg(endpoints.THROUGHPUT_TYPE), self._rel(endpoints.THROUGHPUT_TOPIC), 10)
        self.dnn_rate_pubs: dict[str, Any] = {}  # DNN -> its /rankmap/<dnn>/rate publisher (the rates timer's)
        timers = MutuallyExclusiveCallbackGroup()
        # Executors compute in wall time whatever the simulation does: under `use_sim_time` a paused
        # or slow simulation must not pause supervision or hide a crashed executor from rqt.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(SUPERVISE_PERIOD_S, self.supervise, callback_group=timers, clock=steady)
        hardware_id = f"{socket.gethostname()}/{self.platform.name}"
        period = v["diagnostics_period"]
        self.updater = diagnostics.Updater(self, hardware_id, self.collect_diagnostics, period, clock=steady)
        self.create_timer(period, self.publish_rates, callback_group=timers, clock=steady)
        if started_with:
            self._replan(f"registered {started_with} DNN(s) of {v['dnns_file']}")
        self.planner_thread = threading.Thread(target=self._plan_loop, name="planner", daemon=True)
        self.planner_thread.start()
        self.publish_mapping()
        comps = ", ".join(self.platform.component_names)
        self.get_logger().info(
            f"ready: platform {self.platform.name} ({comps}), planner {v['planner']}, model {self.model.name}, "
            f"scheduling {self.policy.value}, executor {v['executor']}"
        )

    @staticmethod
    def _rel(name: str) -> str:
        """Relative to the node's namespace: /rankmap/... without one, <ns>/rankmap/... with one."""
        return name.lstrip("/")

    # ---- services -------------------------------------------------------------------------

    def on_register(self, request: Any, response: Any) -> Any:
        reg = Registration(
            name=request.name,
            model=request.model,
            input_topic=request.input_topic,
            priority=float(request.priority),
            min_rate=float(request.min_rate),
            output_kind=request.output_kind,
            output_topic="",
            period=float(request.period),
            deadline=float(request.deadline),
        )
        try:
            with self.lock:  # the cheap refusals first (checked again below)
                self.registry.precheck(reg)
            # outside the lock: a model file is checked by building the model (seconds for a large
            # one), and supervision, status and other requests must not wait for that
            resolved = resolve_model(reg.model, self.v["allowed_model_dirs"])
            with self.lock, self.registry.unchanged_on_error():
                stored = self._with_output_topic(self.registry.register(reg, self.v["allowed_model_dirs"], resolved))
                self._replan("registered " + reg.name)
        except Exception as exc:
            return self._refuse(response, "register", exc)
        response.success = True
        response.output_topic = stored.output_topic
        response.message = self._registered(stored)
        return response

    def _register_from_file(self, path: str) -> int:
        """The `dnns_file` DNNs, all or none: a mistake in the robot's configuration stops the start."""
        stored = register_file(self.registry, path, self.v["allowed_model_dirs"])
        for reg in stored:
            self._registered(self._with_output_topic(reg))
        return len(stored)

    def _with_output_topic(self, stored: Registration) -> Registration:
        topic = self.resolve_topic_name(results.output_topic(stored.name, stored.output_kind))
        self.registry.dnns[stored.name] = stored = replace(stored, output_topic=topic)
        return stored

    def _registered(self, stored: Registration) -> str:
        """Log a new DNN, with advice where the scheduling settings do not suit it."""
        kind = f"real-time, deadline {stored.task.deadline * 1e3:g} ms" if stored.period else "best-effort"
        message = f"registered {stored.name} ({stored.model}, {stored.output_kind}, {kind}); planning"
        self.get_logger().info(message)
        if stored.period and not self.policy.arbitrated:
            self.get_logger().warning(
                f"{stored.name} is real-time but scheduling_policy is time_sharing: its deadlines compete with every "
                "stage on its components; set scheduling_policy to edf (and executor to component)"
            )
        elif stored.period and not self.composed and not self.hinted:
            self.hinted = True
            self.get_logger().info(
                f"{stored.name} is real-time: with executor component its stages are preempted without a switch "
                "between processes (docs/REALTIME.md)"
            )
        return message

    def on_unregister(self, request: Any, response: Any) -> Any:
        try:
            with self.lock, self.registry.unchanged_on_error():
                self.registry.unregister(request.name)
                self._replan("unregistered " + request.name)
                self.parked.pop(request.name, None)
                self.input_rates.pop(request.name, None)  # another sensor may come with the name
                if self.measured.forget(request.name):
                    self._save_measured()
                self.waiting.pop(request.name, None)
                self.restart_times.pop(request.name, None)
                self.backoff.pop(request.name, None)
                chain = self.chains.pop(request.name, None)  # last: nothing after it can fail
                left = self.registry.weights()
                if chain is not None:
                    self.stopping.add(request.name)
        except Exception as exc:
            return self._refuse(response, "unregister", exc)
        if chain is not None:
            self._stop_unregistered(request.name, chain)
        response.success = True
        response.message = f"unregistered {request.name}; its executors are stopped"
        self.get_logger().info(response.message)
        if self.registry.mode == "static" and left and not any(left):
            self.get_logger().warning(
                "the DNNs left all have priority 0: they are planned with equal priorities until one is set"
            )
        return response

    def _stop_unregistered(self, name: str, chain: Chain) -> None:
        """Stop the chain outside the lock (up to a grace period), then start the DNN's new chain
        if the name was registered again meanwhile: two chains of one name would publish on one
        output topic and share its sensor's frames."""
        try:
            stop_chain(chain)
        finally:
            with self.lock:
                self.stopping.discard(name)
                if not self.closing and self.plan.mapping is not None:
                    try:
                        self._start_missing(self._planned(), self.plan.mapping, self._platform_in_use())
                    except Exception as exc:  # e.g. a component dropped meanwhile: the re-plan places it
                        self._replan(f"{name} could not be started ({type(exc).__name__}: {exc})")

    def on_set_priorities(self, request: Any, response: Any) -> Any:
        names = list(request.names)
        try:
            with self.lock, self.registry.unchanged_on_error():
                self.registry.set_priorities(request.mode, names, [float(p) for p in request.priorities])
                self._replan(f"priorities ({request.mode})")
                self._order_jobs()
            response.success = True
            response.message = f"priorities set ({request.mode}); re-planning"
        except Exception as exc:
            self._refuse(response, "set_priorities", exc)
        try:
            with self.lock:
                in_force = self._priorities_in_force()
        except Exception as exc:  # the answer above must still reach the caller
            self.get_logger().error(f"priorities in force unknown: {type(exc).__name__}: {exc}")
            in_force = {}
        shown = names if names and response.success else list(in_force)
        response.names_in_force = shown
        response.priorities_in_force = [in_force.get(n, math.nan) for n in shown]
        return response

    def on_status(self, request: Any, response: Any) -> Any:
        response.state = self.mapping_state()
        return response

    def _refuse(self, response: Any, what: str, exc: Exception) -> Any:
        """A refusal answers the caller; any other error too (with its type), and the manager serves on.

        The message is cut to REFUSAL_CHARS: it may quote what the caller sent (a megabyte name),
        and goes into the answer and /rosout.
        """
        response.success = False
        if isinstance(exc, RequestError):
            message = _cut(str(exc))
            response.message = message
            self.get_logger().warning(f"{what} refused: {message}")
        else:
            message = _cut(f"{type(exc).__name__}: {exc}")
            response.message = f"internal error, nothing changed: {message}"
            self.get_logger().error(f"{what} failed: {message}")
        return response

    def _planned(self) -> dict[str, Registration]:
        """The registrations the planner maps: all but the parked ones."""
        return {n: r for n, r in self.registry.dnns.items() if n not in self.parked}

    def _order_jobs(self) -> None:
        """Write the priorities in force (static or dynamic, normalised as the plan's) on the
        running chains' boards: their stages key their next best-effort job with them, so a change
        takes effect at once, whether or not the plan that follows moves anything."""
        in_force = self._priorities_in_force()
        for name, chain in self.chains.items():
            if not chain.stopped and name in in_force:
                chain.board.set_priority(in_force[name])

    def _priorities_in_force(self) -> dict[str, float]:
        """Normalised priorities of the DNNs planned (static or dynamic); a parked DNN has none."""
        dnns = self._planned()
        if not dnns:
            return {}
        workload = self.registry.workload(dnns)
        weights = [r.priority for r in dnns.values()]
        values = planning.priorities_in_force(workload, self.platform, self.registry.mode, weights)
        return dict(zip(workload.names, values, strict=True))

    # ---- planning ---------------------------------------------------------------------------

    def _replan(self, why: str) -> None:
        self.generation += 1
        self.get_logger().info(f"re-plan: {why}")
        self.wake.set()

    def _plan_loop(self) -> None:
        while not self.closing:
            self.wake.wait()
            self.wake.clear()
            if self.closing:
                return
            with self.lock:
                generation = self.generation
                dnns = self._planned()
                mode = self.registry.mode
                platform = self._platform_in_use()
                measured = self.measured.snapshot()
                input_rates = dict(self.input_rates)
                warm = self.plan.mapping
            try:
                outcome = self._compute(dnns, mode, platform, measured, warm, input_rates)
                for reg in dnns.values():
                    boundary_shapes(reg.model)  # traced once per model (~1 s), outside the lock
            except Exception as exc:  # a planner bug must not kill the manager; report and keep the old plan
                self.get_logger().error(f"planning failed: {type(exc).__name__}: {exc}")
                continue
            with self.lock:
                if generation != self.generation or self.closing:
                    continue  # superseded: the newer request has already woken us again
                try:
                    self._apply(dnns, outcome, platform)
                except Exception as exc:  # e.g. a chain that cannot start: the others keep serving
                    self.get_logger().error(f"applying the plan failed: {type(exc).__name__}: {exc}")
            self.publish_mapping()

    def _platform_in_use(self) -> Any:
        return self.platform.without(self.excluded) if self.excluded else self.platform

    def _compute(
        self,
        dnns: dict[str, Registration],
        mode: str,
        platform: Any,
        measured: Observations,
        warm: Mapping | None,
        input_rates: dict[str, float],
    ) -> planning.PlanOutcome | None:
        if not dnns:
            return None
        workload = planning.with_input_rates(self.registry.workload(dnns), input_rates)
        model = self.model if platform is self.platform else self._model_without_excluded(platform)
        model = planning.corrected(model, measured)
        settings = planning.PlanSettings(**{**self.settings.__dict__, "mode": mode})
        weights = planning.planning_weights([r.priority for r in dnns.values()])
        usable = warm if warm is not None and set(warm.components_used) <= set(platform.component_names) else None
        if usable is not None and set(d.name for d in usable.dnns) != set(dnns):
            usable = None
        return planning.make_plan(model, workload, settings, None if mode == "dynamic" else weights, usable)

    def _model_without_excluded(self, platform: Any) -> Any:
        """A named estimator knows the full platform only: without a component, the simulator plans."""
        try:
            return planning.throughput_model(platform, self.v["estimator_checkpoint"])
        except ValueError as exc:
            self.get_logger().warning(
                f"estimator_checkpoint does not fit the platform without {', '.join(sorted(self.excluded))} "
                f"({exc}); planning with the simulator"
            )
            return planning.SimulatorModel(platform)

    def _apply(self, dnns: dict[str, Registration], outcome: planning.PlanOutcome | None, platform: Any) -> None:
        """Stop chains that changed or left, start the new ones; unchanged chains keep running.

        A chain also counts as changed when its components' thread split changed (more or fewer
        stages now share a CPU cluster under time-sharing).
        """
        threads = {} if outcome is None else stage_threads(platform, outcome.mapping, self.policy)

        def changed(name: str, chain: Chain) -> bool:
            return (
                outcome is None
                or name not in dnns
                or chain.stages != stages_of(outcome.mapping, name)
                or any(dict(chain.config.threads).get(c) != threads[c] for _, _, c in chain.stages)
            )

        if outcome is None:
            self.plan = PlanInForce(None, {}, {}, self.v["planner"], 0.0, {})
        else:
            # the same mapping planned again (a priority change that moved nothing) was measured already
            same = outcome.mapping == self.plan.mapping and outcome.base_model == self.plan.base_model
            self.plan = PlanInForce(
                outcome.mapping,
                outcome.predicted,
                outcome.priorities,
                outcome.planner,
                outcome.seconds,
                outcome.base_predicted,
                outcome.base_model,
                self.plan.applied if same else time.monotonic(),
                self.plan.measured if same else False,
                self.plan.errors if same else {},
            )
        to_stop = [self.chains.pop(name) for name, chain in list(self.chains.items()) if changed(name, chain)]
        for name, chain in list(self.waiting.items()):
            if changed(name, chain):  # a new mapping for it (or none): a fresh start, not the backoff
                del self.waiting[name]
        for name, chain in [*self.chains.items(), *self.waiting.items()]:
            if chain.config.priority != dnns[name].priority:  # a restart starts with the weight in force
                chain.config = replace(chain.config, priority=dnns[name].priority)
        stop_chains(to_stop)
        if outcome is None:
            return
        self._start_missing(dnns, outcome.mapping, platform, threads)
        summary = "; ".join(
            f"{n}: " + " ".join(f"{a}-{b - 1}@{c}" for a, b, c in stages_of(outcome.mapping, n)) for n in dnns
        )
        self.get_logger().info(f"mapping ({outcome.planner}, {outcome.seconds:.2f} s): {summary}")

    def _start_missing(
        self, dnns: dict[str, Registration], mapping: Mapping, platform: Any, split: dict[str, int] | None = None
    ) -> None:
        """Start the chains the mapping has and nothing runs yet, except those waiting out a backoff
        and those whose unregistered namesake is still stopping (started when it has stopped).
        `split`: the mapping's `stage_threads`, where the caller has it."""
        split = split if split is not None else stage_threads(platform, mapping, self.policy)
        threads = tuple(sorted(split.items()))
        mapped = {(d.name, d.model) for d in mapping.dnns}  # a name registered again with another model waits
        for name, reg in dnns.items():
            if (name, reg.model) in mapped and not (
                name in self.chains or name in self.waiting or name in self.stopping
            ):
                self.chains[name] = start_chain(
                    self._config(reg, threads),
                    platform,
                    stages_of(mapping, name),
                    arbiters=self.arbiters,
                    containers=self.containers,
                )
                self.below_since.pop(name, None)
        self._order_jobs()

    def _config(self, reg: Registration, threads: tuple[tuple[str, int], ...]) -> ChainConfig:
        return ChainConfig(
            dnn=reg.name,
            model=reg.model,
            weights=reg.weights,
            priority=reg.priority,
            # resolved as this node's names are, so a launch's remapping of the manager reaches its DNNs' inputs
            input_topic=self.resolve_topic_name(reg.input_topic),
            input_compressed=image_codec.is_compressed_topic(reg.input_topic),
            output_topic=reg.output_topic,
            output_kind=reg.output_kind,
            namespace=self.get_namespace(),
            input_reliability=self.v["qos.input_reliability"],
            input_depth=self.v["qos.input_depth"],
            results_depth=self.v["qos.results_depth"],
            compute_niceness=self.v["compute_niceness"],
            period=reg.period,
            deadline=reg.task.deadline or 0.0,
            policy=self.policy.value,
            drop_late=self.v["drop_late_jobs"],
            threads=threads,
            log_level=self._log_level(),
        )

    def _log_level(self) -> str:
        """This node's level for its executors' command lines ("" at the default, info)."""
        name = str(getattr(self.get_logger().get_effective_level(), "name", "INFO")).lower()
        return "" if name == "info" else name

    # ---- supervision ------------------------------------------------------------------------

    def supervise(self) -> None:
        """Restart dead or hung executors; re-plan when a component keeps failing or a DNN starves."""
        now = time.monotonic()
        with self.lock:
            if self.closing:
                return
            for name, chain in list(self.waiting.items()):
                if now >= chain.retry_at:
                    del self.waiting[name]
                    if not any(c in self.excluded for _, _, c in chain.stages):  # else the re-plan places it
                        self.chains[name] = chain
                        self._start_again(name, chain)
            for name, chain in list(self.chains.items()):
                failure = check_chain(chain, now, self.v["hung_timeout"], self.v["start_timeout"])
                if failure is not None:
                    self._restart(name, chain, failure, now)
                    continue
                chain.sample(now)
            self._note_measured(now)
            self._check_rates(now)
            self._check_input_rates(now)

    def _restart(self, name: str, chain: Chain, failure: Failure, now: float) -> None:
        if failure.reason.startswith(DNN_FAULTS):
            stop_chain(chain, grace_s=0.5)
            self.chains.pop(name)
            self.parked[name] = failure.reason
            self.get_logger().error(
                f"{name} cannot run: {failure.reason}; it stays registered but is not started again "
                "(unregister it, fix its model file or card, register it again)"
            )
            self._replan(f"{name} cannot run")
            return
        self.get_logger().error(
            f"executor {failure.dnn} stage {failure.stage} on {failure.component} (pid {failure.pid}) failed: "
            f"{failure.reason}; restarting its chain"
        )
        stop_chain(chain, grace_s=0.5)
        # A dead container fails every chain it ran: that is one failure of its component.
        recent = [f for f in self.failures if now - f[0] < FAILURE_WINDOW_S]
        if not any(c == failure.component and pid == failure.pid for _, c, pid in recent):
            recent.append((now, failure.component, failure.pid))
        self.failures = recent
        if (
            sum(c == failure.component for _, c, _ in self.failures) >= self.v["max_failures"]
            and len(self._platform_in_use().components) > 1
        ):
            self.excluded.add(failure.component)
            self.chains.pop(name)
            if self.containers is not None:
                self.containers.discard(failure.component)
            self._replan(f"component {failure.component} failed {self.v['max_failures']} times; planning without it")
            return
        if any(c in self.excluded for _, _, c in chain.stages):
            self.chains.pop(name)  # on a component dropped a moment ago: the pending re-plan places it
            return
        if now - chain.started > FAILURE_WINDOW_S:  # it ran a while since its last start: not a loop
            self.restart_times.pop(name, None)
            self.backoff.pop(name, None)
        recent = [t for t in self.restart_times.get(name, []) if now - t < FAILURE_WINDOW_S] + [now]
        self.restart_times[name] = recent
        if name in self.backoff or len(recent) > self.v["max_failures"]:
            delay = min(RESTART_BACKOFF_MAX_S, 2.0 * self.backoff.get(name, 1.0))
            self.backoff[name] = delay
            chain.retry_at = now + delay
            self.waiting[name] = self.chains.pop(name)
            self.get_logger().error(
                f"{name} failed {len(recent)} times in {FAILURE_WINDOW_S:.0f} s; restarting it in {delay:.0f} s"
            )
            return
        self._start_again(name, chain)

    def _start_again(self, name: str, chain: Chain) -> None:
        try:
            self.chains[name] = start_chain(
                chain.config, self._platform_in_use(), chain.stages, chain.restarts + 1, self.arbiters, self.containers
            )
            self._order_jobs()
        except Exception as exc:  # e.g. shared memory exhausted: plan again rather than stop serving
            self.chains.pop(name)
            self._replan(f"{name} could not be restarted ({type(exc).__name__}: {exc})")

    def _check_input_rates(self, now: float) -> None:
        """Re-plan when a sensor turns out slower than what its DNN's mapping could answer.

        The capacity beyond a sensor's rate serves nobody; planned with the measured rate, it goes
        to the other DNNs. Rates are noted when they move by INPUT_CHANGE; a re-plan follows only
        when one binds (below the DNN's predicted rate), at most every STARVATION_COOLDOWN_S. A
        DNN whose first rate is not measured yet (its chain has just started, or is still loading
        its model) is waited for, up to INPUT_WAIT_S: re-planning without it would move the chains
        again once it is.
        """
        if not self.v["plan_with_input_rates"]:
            return
        binding, changed, pending = False, {}, False
        for name, chain in self.chains.items():
            reg = self.registry.dnns.get(name)
            # real-time DNNs are planned with their period
            if reg is None or reg.period > 0:
                continue
            noted = self.input_rates.get(name)
            if not chain.full_window(now):  # a restarted chain's first seconds are not its sensor's rate
                pending |= noted is None and chain.measuring(now)
                continue
            arriving = chain.input_rate(now)
            if math.isnan(arriving) or arriving <= 0:
                continue
            if noted is not None and abs(arriving - noted) <= INPUT_CHANGE * noted:
                continue
            if now - self.last_input_plan < STARVATION_COOLDOWN_S:
                return
            changed[name] = arriving
            predicted = self.plan.predicted.get(name, math.nan)
            binding |= arriving < predicted or (noted is not None and noted < predicted)
        if binding and pending:
            self.input_wait_since = self.input_wait_since or now
            if now - self.input_wait_since < INPUT_WAIT_S:
                return
        self.input_wait_since = None
        self.input_rates.update(changed)
        if binding:
            self.last_input_plan = now
            rates = ", ".join(f"{n} {r:.1f}/s" for n, r in self.input_rates.items())
            self._replan(f"input rates measured ({rates}): capacity beyond them goes to the others")

    def _note_measured(self, now: float, again: bool = False) -> None:
        """Note, once per mapping (or `again`), how far its measured rates were from the model's.

        Waits until two rate windows have passed since the mapping was applied and since its
        last chain (re)started: a window that straddles a change, or a chain loading its model
        while the others run with less contention, is not the mapping's rate. `again` (a DNN
        starved for the grace period) waits for one window only: the shortfall is the news. A DNN that keeps up
        with its sensor answers at its sensor's rate: below the prediction that says nothing of
        how fast its mapping could go, so it is left out; above it, the model is wrong by at
        least that much, and it is noted (a lower bound of the error, so the correction falls
        short rather than overshoots).
        """
        plan = self.plan
        if plan.mapping is None or (plan.measured and not again):
            return
        chains = [self.chains.get(dnn.name) for dnn in plan.mapping.dnns]
        if any(c is None or c.stages != stages_of(plan.mapping, c.config.dnn) for c in chains):
            return  # a chain waiting out its restart backoff, or one of another plan
        settled = max([plan.applied, *(c.started for c in chains if c is not None)])
        wait = RATE_WINDOW_S if again else 2 * RATE_WINDOW_S
        if now - settled < wait or not all(c is not None and c.full_window(now) for c in chains):
            return  # still loading a model, perhaps
        measured = [(c, c.rate(now)) for c in chains if c is not None]
        rates = {
            c.config.dnn: r
            for c, r in measured
            if not (c.keeps_up(now) and r < plan.base_predicted.get(c.config.dnn, 0.0))
        }
        plan.measured = True
        noted = self.measured.record(plan.base_model, plan.mapping, plan.base_predicted, rates)
        plan.errors.update({n: math.exp(e) - 1 for n, e in noted.items()})
        if noted:
            self._save_measured()
            errors = ", ".join(f"{n} {plan.errors[n]:+.0%}" for n in noted)
            self.get_logger().info(f"measured against the model: {errors}")

    def _save_measured(self) -> None:
        if not self.measurements_file:
            return
        try:
            planning.save_measurements(self.measurements_file, self.platform, self.measured)
        except OSError as exc:  # a full or read-only disk must not stop the manager
            self.get_logger().error(f"measurements_file {self.measurements_file}: {exc}; kept in memory only")
            self.measurements_file = ""

    def _check_rates(self, now: float) -> None:
        """A DNN below its minimum rate for `starvation_grace` s: note what was measured and re-plan."""
        grace = self.v["starvation_grace"]
        for name, chain in self.chains.items():
            reg = self.registry.dnns.get(name)
            rate = chain.rate(now)
            if reg is None or not reg.min_rate or math.isnan(rate) or rate >= reg.min_rate or chain.keeps_up(now):
                self.below_since.pop(name, None)  # keeping up, it is short of input, not of compute
                continue
            since = self.below_since.setdefault(name, now)
            if now - since < grace or now - self.last_starvation_plan < STARVATION_COOLDOWN_S:
                continue
            self.below_since = {}
            self.last_starvation_plan = now
            self._note_measured(now, again=True)  # the shortfall as it is now, not only as first measured
            self._replan(f"{name} measured {rate:.2f}/s below its minimum {reg.min_rate:g}/s for {grace:g} s")
            return

    # ---- state out --------------------------------------------------------------------------

    def mapping_state(self) -> Any:
        with self.lock:
            return self._mapping_state()

    def _mapping_state(self) -> Any:
        state_type, dnn_type, stage_type = (
            msg(endpoints.MAPPING_TYPE),
            msg("rankmap_ros/msg/DnnMapping"),
            msg("rankmap_ros/msg/Stage"),
        )
        now = time.monotonic()
        state = state_type(
            platform=self.platform.name,
            planner=self.plan.planner,
            priority_mode=self.registry.mode,
            plan_seconds=float(self.plan.seconds),
        )
        state.stamp = self.get_clock().now().to_msg()
        for name, reg in self.registry.dnns.items():
            chain = self.chains.get(name)
            stages = []
            if chain is not None:
                for k, (a, b, comp) in enumerate(chain.stages):
                    service = chain.stage_stats(k)["service_time_s"]
                    stages.append(stage_type(unit_start=a, unit_stop=b, component=comp, service_time=service))
            measured = chain.rate(now) if chain else math.nan
            predicted = self.plan.predicted.get(name, math.nan) if chain else math.nan
            ideal = planning.ideal_rate(self.platform, reg.model)
            rate = measured if not math.isnan(measured) else predicted
            state.dnns.append(
                dnn_type(
                    name=name,
                    model=reg.model,
                    priority=self.plan.priorities.get(name, math.nan),
                    min_rate=reg.min_rate,
                    period=reg.period,
                    deadline=reg.task.deadline or 0.0,
                    deadline_miss_rate=chain.miss_rate(now) if chain is not None and reg.period else math.nan,
                    stages=stages,
                    predicted_rate=predicted,
                    measured_rate=measured,
                    potential_throughput=rate / ideal,
                )
            )
        return state

    def publish_mapping(self) -> None:
        self.mapping_pub.publish(self.mapping_state())

    def publish_rates(self) -> None:
        array_type = msg(endpoints.THROUGHPUT_TYPE)
        dim = msg("std_msgs/msg/MultiArrayDimension")
        with self.lock:
            now = time.monotonic()
            names = list(self.registry.dnns)
            rates = [self.chains[n].rate(now) if n in self.chains else math.nan for n in names]
        out = array_type(data=rates)
        out.layout.dim = [dim(label=",".join(names), size=len(names), stride=len(names))]
        self.rate_pub.publish(out)
        # one topic per DNN too: data[i] of the array follows registration order, so an unregister
        # moves every later DNN's curve in rqt_plot; /rankmap/<dnn>/rate stays that DNN's
        for gone in set(self.dnn_rate_pubs) - set(names):
            self.destroy_publisher(self.dnn_rate_pubs.pop(gone))
        for name, rate in zip(names, rates, strict=True):
            if name not in self.dnn_rate_pubs:
                self.dnn_rate_pubs[name] = self.create_publisher(Float64, results.rate_topic(name), 10)
            self.dnn_rate_pubs[name].publish(Float64(data=rate))

    def collect_diagnostics(self) -> list[Status]:
        with self.lock:
            state = self._mapping_state()
            now = time.monotonic()
            statuses = []
            for d in state.dnns:
                chain = self.chains.get(d.name)
                limits = (self.v["starvation_threshold"], self.v["starvation_grace"])
                shown = chain or self.waiting.get(d.name)
                error = self.plan.errors.get(d.name)
                statuses.append(dnn_status(d, shown, now, *limits, self.parked.get(d.name), error))
                if chain is not None:
                    statuses += stage_statuses(chain)
            statuses += self._component_statuses()
            return [self._manager_status(now), *statuses]

    def _manager_status(self, now: float) -> Status:
        """The manager itself, always published: the aggregator drops DNNs and stages gone stale,
        so without it a manager that died would leave its groups OK and empty, not STALE."""
        status = Status("manager")
        registered, running = len(self.registry.dnns), len(self.chains)
        status.add("platform", self.platform.name)
        status.add("planner", self.plan.planner)
        status.add("scheduling_policy", self.policy.value)
        status.add("registered", registered)
        status.add("running", running)
        status.add("parked", len(self.parked))
        status.add("excluded_components", ",".join(sorted(self.excluded)) or "-")
        status.add("plan_age_s", now - self.plan.applied if self.plan.mapping is not None else math.nan)
        if self.excluded:
            status.summary(diagnostics.WARN, f"planning without {', '.join(sorted(self.excluded))} (failed)")
        else:
            status.summary(diagnostics.OK, f"{running} of {registered} DNNs running")
        return status

    def _component_statuses(self) -> list[Status]:
        """Under an arbitrated policy, each component's arbiter: decisions and their cost."""
        if self.containers is not None:
            return self._container_statuses()
        out = []
        assert self.arbiters is not None  # not composed: the stage executors' arbiters
        for name, (stats, waiting) in self.arbiters.stats().items():
            status = Status(f"component {name}")
            status.add("policy", self.policy.value)
            status.add("decisions", stats.decisions)
            status.add("overhead_us_per_decision", round(stats.overhead_s_per_decision * 1e6, 2))
            status.add("waiting_stages", waiting)
            status.add("dead_holders_cleared", stats.cleared)
            status.summary(diagnostics.OK, f"{self.policy.value}: {stats.decisions} decisions")
            out.append(status)
        return out

    def _container_statuses(self) -> list[Status]:
        """Each component container: its process, the stages it runs, its loop's decisions.

        Decisions are counted on the running stages' board rows, so they cover the chains now
        running (a chain restarted or re-mapped starts from zero).
        """
        assert self.containers is not None
        out = []
        chains = list(self.chains.values())
        for name, container in self.containers.running.items():
            stages, decisions, decide_s = 0, 0, 0.0
            for chain in chains:
                for p in chain.processes:
                    if p.process is container.process:
                        row = chain.board.rows[p.index]
                        stages += int(row["state"]) == StageState.READY
                        decisions += int(row["decisions"])
                        decide_s += float(row["decide_s"])
            status = Status(f"component {name}")
            status.add("policy", self.policy.value)
            status.add("executor", "component")
            status.add("pid", container.process.pid)
            status.add("stages", stages)
            status.add("starts", self.containers.starts[name])
            status.add("decisions", decisions)
            status.add("overhead_us_per_decision", round(decide_s / decisions * 1e6, 2) if decisions else 0.0)
            alive = container.process.poll() is None
            summary = f"{self.policy.value}: {decisions} decisions" if alive else "container exited"
            status.summary(diagnostics.OK if alive else diagnostics.ERROR, summary)
            out.append(status)
        return out

    def close(self) -> None:
        """Stop planning and every executor, free the shared memory.

        Each step runs even when one before it failed: what it leaves would outlive the manager.
        The planner is not waited for long: it is a daemon thread, and once `closing` is set it
        applies nothing (launch escalates to SIGKILL within 20 s, rankmap.launch.py).
        """
        with self.lock:
            self.closing = True
            chains, self.chains = list(self.chains.values()), {}
        self.wake.set()
        try:
            stop_chains(chains)
        finally:
            self.planner_thread.join(timeout=1.0)
            try:
                if self.arbiters is not None:
                    self.arbiters.close()
            finally:
                if self.containers is not None:
                    self.containers.close()


def dnn_status(
    d: Any,
    chain: Chain | None,
    now: float,
    starvation: float,
    grace: float,
    parked: str | None = None,
    model_error: float | None = None,
) -> Status:
    """OK, WARN below its minimum rate, ERROR when starved (P under the threshold, or no results)
    or when it cannot run as registered (`parked`: why). `model_error`: how far the planner's
    model was from what this mapping measured, when noted (a large one says: calibrate)."""
    status = Status(f"dnn {d.name}")
    status.add("model", d.model)
    status.add("priority", d.priority)
    status.add("stages", " ".join(f"{s.unit_start}-{s.unit_stop - 1}@{s.component}" for s in d.stages) or "-")
    status.add("measured_rate", d.measured_rate)
    status.add("predicted_rate", d.predicted_rate)
    status.add("min_rate", d.min_rate)
    status.add("potential_throughput", d.potential_throughput)
    if model_error is not None:
        status.add("model_error", round(model_error, 3))
    if d.period > 0:
        status.add("period_s", d.period)
        status.add("deadline_s", d.deadline)
        status.add("deadline_miss_rate", d.deadline_miss_rate)
    if parked is not None:
        status.summary(diagnostics.ERROR, f"cannot run: {parked}")
        return status
    if chain is None:
        status.summary(diagnostics.WARN, "waiting for a mapping")
        return status
    status.add("restarts", chain.restarts)
    if chain.stopped:  # waiting out its restart backoff: nothing of it to read
        status.summary(diagnostics.ERROR, f"keeps failing: restarting in {max(0.0, chain.retry_at - now):.0f} s")
        return status
    arriving = chain.input_rate(now)
    status.add("input_rate", arriving)
    keeping_up = chain.keeps_up(now)  # then a low rate is the sensor's: not starved, nothing to re-plan
    if not chain.ready() or math.isnan(d.measured_rate):
        late = now - chain.started > grace + 30.0
        status.summary(diagnostics.ERROR if late else diagnostics.OK, "starting executors")
    elif arriving == 0.0:
        status.summary(diagnostics.ERROR, f"no input: nothing on {chain.config.input_topic} for {RATE_WINDOW_S:g} s")
    elif not keeping_up and (d.measured_rate == 0.0 or d.potential_throughput < starvation):
        status.summary(diagnostics.ERROR, f"starved: {d.measured_rate:.2f}/s (P {d.potential_throughput:.2f})")
    elif d.min_rate > 0 and d.measured_rate < d.min_rate:
        if keeping_up and arriving < d.min_rate:  # no mapping answers more images than arrive
            message = f"input arrives at {arriving:.2f}/s, below the minimum rate {d.min_rate:g}/s"
        else:
            message = f"below minimum rate: {d.measured_rate:.2f} < {d.min_rate:g}/s"
        status.summary(diagnostics.WARN, message)
    elif d.period > 0 and d.deadline_miss_rate > MAX_MISS_RATE:
        status.summary(diagnostics.WARN, f"misses {d.deadline_miss_rate:.1%} of deadlines ({d.deadline * 1e3:g} ms)")
    else:
        keeping = ", keeping up with its input" if keeping_up else ""
        status.summary(diagnostics.OK, f"{d.measured_rate:.2f} inferences/s{keeping}")
    return status


def _cut(message: str) -> str:
    return message if len(message) <= REFUSAL_CHARS else f"{message[:REFUSAL_CHARS]}... ({len(message)} characters)"


def stage_statuses(chain: Chain) -> list[Status]:
    out = []
    for p in chain.processes:
        stats = chain.stage_stats(p.index)
        a, b, comp = p.key
        status = Status(f"stage {chain.config.dnn}[{a}:{b}]@{comp}")
        status.add("component", comp)
        status.add("pid", p.process.pid)
        keys = (
            "service_time_s",
            "compute_cpu_s",
            "queue_wait_s",
            "last_service_s",
            "queue_depth",
            "received",
            "drops",
            "frames",
            "state",
        )
        if chain.config.policy != "time_sharing":
            keys += ("late_drops", "preempted")
        for key in keys:
            status.add(key, stats[key])
        if chain.config.policy not in ("time_sharing", "fifo"):  # what orders its best-effort jobs now
            status.add("priority", float(chain.board.rows["priority"][p.index]))
        level = {"ready": diagnostics.OK, "failed": diagnostics.ERROR}.get(str(stats["state"]), diagnostics.WARN)
        status.summary(level, str(stats["state"]))
        out.append(status)
    return out


def spin_serving(executor: Any, logger: Any) -> None:
    """Spin until shutdown. A callback that raises (a bug) is logged and the manager serves on:
    executors re-raise callback errors from spin(), which would stop every DNN with it."""
    while True:
        try:
            executor.spin()
            return
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as exc:
            if not rclpy.ok():  # shutting down: nothing left to serve
                return
            logger.error(f"a callback failed: {type(exc).__name__}: {exc}; serving on", throttle_duration_sec=5.0)


def main(args: list[str] | None = None) -> None:
    follow_parent()
    rclpy.init(args=args)
    # an SSH session closed under `ros2 launch` hangs the terminal's processes up: clean up as on
    # SIGTERM (rclpy's handler), not die with executors and shared memory left behind
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # under nohup it stays ignored
        signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    node = None
    try:
        try:
            node = Manager()
        except (ValueError, ParameterException, HostRuntimeError) as exc:  # bad parameters or platform: one line
            rclpy.logging.get_logger("rankmap_manager").fatal(f"cannot start: {exc}")
            raise SystemExit(2) from exc
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        spin_serving(executor, node.get_logger())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # a second Ctrl-C at the terminal must not cut the clean-up short: executors would be left
        # to their owner watch and shared memory to the next manager
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.close()
            with contextlib.suppress(Exception):
                node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
