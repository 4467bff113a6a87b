"""A perception node as a user writes one: registers its DNNs, listens to results, changes a priority.

It registers every DNN of its parameters with the manager (waiting for the service), subscribes
to the output topic each registration answers with, checks that results carry the source
image's header (a stamp the camera sent), and after `change_after` seconds sets `change_name`'s
priority to `change_priority`. It logs result rates every few seconds. A mapping without one of
its DNNs means a new manager (the old one restarted): it registers that DNN again, with the
priority in force. So does a DNN of its own that someone else unregistered: stop the node to
take its DNNs away.
"""

from __future__ import annotations

import time
from typing import Any

from rankmap_ros.ros import endpoints, results
from rankmap_ros.ros.parent import follow_parent
from rankmap_ros.ros.rclpy_compat import (
    DurabilityPolicy,
    ExternalShutdownException,
    Node,
    ParameterDescriptor,
    ParameterException,
    QoSProfile,
    msg,
    rclpy,
    srv,
)

RegisterDnn = srv(endpoints.REGISTER_TYPE)
SetPriorities = srv(endpoints.SET_PRIORITIES_TYPE)
DEMO_DNNS = ("squeezenet_v2", "mobilenet_v2", "shufflenet")
ASK_TIMEOUT_S = 10.0  # a register request unanswered this long is sent again


class PerceptionDemo(Node):
    def __init__(self) -> None:
        super().__init__("perception_demo")

        def d(description: str) -> ParameterDescriptor:
            return ParameterDescriptor(description=description, read_only=True)  # read once, at start

        self.declare_parameter("names", list(DEMO_DNNS), d("DNN instance names"))
        self.declare_parameter("models", list(DEMO_DNNS), d("zoo model of each DNN"))
        self.declare_parameter("priorities", [3.0, 2.0, 1.0], d("static priority of each DNN"))
        self.declare_parameter("min_rates", [0.0, 0.0, 0.0], d("minimum inferences/s of each DNN"))
        self.declare_parameter("input_topic", "/camera/image_raw", d("sensor_msgs/Image topic"))
        self.declare_parameter("change_after", 20.0, d("seconds until the priority change; <= 0: never"))
        self.declare_parameter("change_name", "shufflenet", d("DNN whose priority changes"))
        self.declare_parameter("change_priority", 6.0, d("its new priority"))
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        self.names, self.models = list(get("names")), list(get("models"))
        self.priorities, self.min_rates = list(get("priorities")), list(get("min_rates"))
        if not len(self.names) == len(self.models) == len(self.priorities) == len(self.min_rates):
            raise ValueError("names, models, priorities and min_rates need one entry per DNN")
        self.input_topic = get("input_topic")
        self.change = (get("change_after"), get("change_name"), get("change_priority"))
        self.register_client = self.create_client(RegisterDnn, endpoints.REGISTER_SERVICE.lstrip("/"))
        self.priority_client = self.create_client(SetPriorities, endpoints.SET_PRIORITIES_SERVICE.lstrip("/"))
        self.counts: dict[str, int] = {}
        self.pending: list[tuple[float, Any]] = []  # (sent, future) of requests in flight
        self.started = time.monotonic()
        self.changed = False
        self.wanted: set[str] = set(self.names)  # to register (again) once the service is there
        self.asking: dict[str, float] = {}  # a register request in flight -> when it was sent
        self.live: set[str] = set()  # registered with the manager that answers now
        self.subscribed: set[str] = set()
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        mapping = endpoints.MAPPING_TOPIC.lstrip("/")
        self.create_subscription(msg(endpoints.MAPPING_TYPE), mapping, self.on_mapping, latched)
        self.create_timer(0.5, self.step)
        self.create_timer(5.0, self.report)

    def step(self) -> None:
        now = time.monotonic()
        # answered, or lost with a manager that went away (asked again): nothing left to keep
        self.pending = [(t, f) for t, f in self.pending if not f.done() and now - t <= ASK_TIMEOUT_S]
        for name, asked in list(self.asking.items()):
            if now - asked > ASK_TIMEOUT_S:  # lost with a manager that went away: ask the next one
                del self.asking[name]
                self.wanted.add(name)
        if self.wanted:
            if not self.register_client.service_is_ready():
                self.get_logger().info("waiting for the manager", throttle_duration_sec=5.0)
            else:
                for name in sorted(self.wanted):
                    self.register(name)
        after, name, priority = self.change
        if not self.changed and after > 0 and now - self.started >= after:
            if name in self.names:
                self.priorities[self.names.index(name)] = priority  # what a later registration asks for
                if name in self.asking:  # asked with the old priority: change it once answered
                    return
                if name in self.wanted:  # its registration will ask for the new one
                    self.changed = True
                    return
            self.changed = True
            request = SetPriorities.Request(mode="static", names=[name], priorities=[float(priority)])
            future = self.priority_client.call_async(request)
            future.add_done_callback(lambda f: self.get_logger().info(f"priority change: {f.result().message}"))
            self.pending.append((now, future))

    def register(self, name: str) -> None:
        i = self.names.index(name)
        request = RegisterDnn.Request(
            name=name,
            model=self.models[i],
            input_topic=self.input_topic,
            priority=float(self.priorities[i]),
            min_rate=float(self.min_rates[i]),
        )
        self.wanted.discard(name)
        self.asking[name] = time.monotonic()
        future = self.register_client.call_async(request)
        future.add_done_callback(lambda f: self.on_registered(name, f))
        self.pending.append((time.monotonic(), future))

    def on_mapping(self, state: Any) -> None:
        """A DNN we registered is missing from the mapping: the manager is a new one."""
        lost = self.live - {dnn.name for dnn in state.dnns}
        for name in sorted(lost):
            self.get_logger().warning(f"{name} is not in the manager's mapping (a restarted manager?): registering it")
            self.live.discard(name)
            self.wanted.add(name)

    def on_registered(self, name: str, future: Any) -> None:
        self.asking.pop(name, None)
        response = future.result()
        if not response.success:
            if "already registered" in response.message:  # asked twice of one manager: nothing lost
                self.live.add(name)
                self.wanted.discard(name)
                return
            self.get_logger().error(f"{name} refused: {response.message}")
            return
        self.live.add(name)
        self.wanted.discard(name)
        self.get_logger().info(f"{name}: {response.message}; results on {response.output_topic}")
        if name in self.subscribed:
            return
        kind = next(k for k, suffix in results.TOPIC_SUFFIX.items() if response.output_topic.endswith("/" + suffix))
        self.counts[name] = 0
        self.subscribed.add(name)
        self.create_subscription(
            msg(results.MESSAGE_TYPE[kind]), response.output_topic, lambda m, n=name: self.on_result(n, m), 10
        )

    def on_result(self, name: str, result: Any) -> None:
        if result.header.stamp.sec == 0 and result.header.stamp.nanosec == 0:
            self.get_logger().warning(f"{name}: result without the source stamp", throttle_duration_sec=5.0)
        self.counts[name] += 1

    def report(self) -> None:
        if self.counts:
            self.get_logger().info("results: " + ", ".join(f"{n} {c}" for n, c in self.counts.items()))


def main(args: list[str] | None = None) -> None:
    follow_parent()
    rclpy.init(args=args)
    node: Any = None
    try:
        try:
            node = PerceptionDemo()
        except (ValueError, ParameterException) as exc:  # a bad parameter: one clear line
            rclpy.logging.get_logger("perception_demo").fatal(f"cannot start: {exc}")
            raise SystemExit(2) from exc
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
