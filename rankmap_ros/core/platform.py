"""Platforms: the computing components of a board and the cost of moving tensors between them.

A platform is plain data (frozen dataclasses) read from YAML. Built-in platforms live in
`rankmap_ros/data/platforms/<name>.yaml`; `load_platform` takes such a name or a path. Every
error names the offending field, e.g. ``components[1].cores: expected a positive integer, got -2``,
because platform files are written by hand and a bare "invalid value" helps nobody.
The meaning of every field, and where the orange_pi_5 values come from, is in docs/SIMULATOR.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from rankmap_ros.core.files import load_yaml, not_a_file, yaml_problem
from rankmap_ros.core.numbers import finite_number

ComponentKind = Literal["cpu", "gpu"]
Backend = Literal["cpu", "opencl", "cuda"]
Sharing = Literal["fair", "round_robin"]

KINDS: tuple[str, ...] = ("cpu", "gpu")
BACKENDS: tuple[str, ...] = ("cpu", "opencl", "cuda")
SHARINGS: tuple[str, ...] = ("fair", "round_robin")
WORK_KINDS: tuple[str, ...] = ("conv", "dwconv", "fc", "other")
TRANSFER_KEYS: tuple[str, ...] = ("cpu_to_cpu", "cpu_to_gpu", "gpu_to_cpu", "gpu_to_gpu")
_DATA = "data/platforms"


class PlatformError(ValueError):
    """A platform that cannot be used; the message starts with the path of the bad field."""


@dataclass(frozen=True)
class WorkRates:
    """Effective GFLOP/s of a whole component for each kind of work (a FLOP is half a MAC)."""

    conv: float
    dwconv: float
    fc: float
    other: float


@dataclass(frozen=True)
class Component:
    """One computing component: a CPU cluster (all its cores run a stage) or a GPU.

    `sharing` says how the component splits its time between resident stages: `fair` is the
    Linux CFS (equal time to every runnable stage), `round_robin` is a GPU interleaving one
    kernel from each command queue in turn, at least `timeslice_us` of kernels per turn.
    `concurrency_loss` is the fraction of capacity lost per extra resident stage (cache and
    context thrashing, driver arbitration, oversubscribed thread pools).
    `model_concurrency_loss` overrides it for the models calibration measured sharing the
    component: models lose different amounts (a depthwise net whose activations no longer fit
    in cache loses more than a compact one), so one figure for all of them misplaces rates.
    `interference` is the fraction by which the component slows down while other components
    are busy too (shared last-level cache and memory bandwidth; on a host, the runtime's own
    threads): 0 where it was never measured.
    `cpus` pins a CPU cluster's stages to its cores; on a GPU it pins the host processes that
    feed it (keep them off the clusters' cores); empty leaves the scheduler to place them.
    `parallelism` is how many resident stages' worth of work the component completes at once:
    1 for a component that time-shares; more for one whose stages leave most of it idle (a
    large GPU running batch-1 stages that are bound by kernel launches), as measured.
    """

    name: str
    kind: ComponentKind
    cores: int
    frequency_ghz: float
    gflops: WorkRates
    memory_bandwidth_gbs: float
    kernel_overhead_us: float
    sharing: Sharing
    concurrency_loss: float
    timeslice_us: float = 0.0
    backend: Backend = "cpu"
    cpus: tuple[int, ...] = ()
    device: str = ""
    interference: float = 0.0
    parallelism: float = 1.0
    model_concurrency_loss: tuple[tuple[str, float], ...] = ()

    def loss_for(self, model: str) -> float:
        """The concurrency loss of `model`'s stages here: its own where measured, else the component's."""
        for name, loss in self.model_concurrency_loss:  # a few entries; no dict per stage on the hot path
            if name == model:
                return loss
        return self.concurrency_loss


@dataclass(frozen=True)
class TransferCost:
    """Time to hand a tensor between two stages: fixed + linear + quadratic in its size (Pipe-All's fit)."""

    fixed_us: float
    us_per_mb: float
    us_per_mb2: float

    def seconds(self, nbytes: float) -> float:
        mb = nbytes / 1e6
        return (self.fixed_us + self.us_per_mb * mb + self.us_per_mb2 * mb * mb) * 1e-6


@dataclass(frozen=True)
class MeasuredUnits:
    """Measured seconds of each unit of one model alone on one component (`rankmap calibrate`).

    The simulator takes these over its per-kind rates for that model and component: profiled
    units are what a board really does, and the rates remain for every model not profiled.
    """

    model: str
    component: str
    seconds: tuple[float, ...]


@dataclass(frozen=True)
class Platform:
    """Components in a fixed order (the column blocks of the Q tensor) and transfer costs by kind pair.

    `transfers` holds (key, cost) pairs with keys from TRANSFER_KEYS, e.g. 'gpu_to_cpu'; a tuple
    rather than a dict keeps the platform hashable, so simulator caches can key on it.
    """

    name: str
    components: tuple[Component, ...]
    transfers: tuple[tuple[str, TransferCost], ...]
    reference_component: str
    calibrated: bool = False
    description: str = ""
    unit_times: tuple[MeasuredUnits, ...] = ()

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)

    def index(self, name: str) -> int:
        names = self.component_names
        if name not in names:
            raise PlatformError(f"platform {self.name!r} has no component {name!r} ({', '.join(names)})")
        return names.index(name)

    def component(self, name: str) -> Component:
        return self.components[self.index(name)]

    def measured_units(self, model: str) -> dict[int, tuple[float, ...]]:
        """Component index -> measured unit seconds of `model`, where it was profiled."""
        return {self.index(u.component): u.seconds for u in self.unit_times if u.model == model}

    def without(self, names: Iterable[str]) -> Platform:
        """The platform less some components (e.g. ones that kept failing), with their unit times."""
        gone = set(names)
        kept = tuple(c for c in self.components if c.name not in gone)
        if not kept:
            raise PlatformError(f"platform {self.name!r} has no component but {', '.join(sorted(gone))}")
        reference = self.reference_component if self.reference_component not in gone else kept[0].name
        return replace(
            self,
            components=kept,
            reference_component=reference,
            unit_times=tuple(u for u in self.unit_times if u.component not in gone),
        )

    def transfer(self, src: str, dst: str) -> TransferCost:
        """Cost model for a tensor leaving component `src` for component `dst`."""
        key = f"{self.component(src).kind}_to_{self.component(dst).kind}"
        return dict(self.transfers)[key]

    def to_dict(self) -> dict[str, Any]:
        components = []
        for c in self.components:
            entry: dict[str, Any] = {
                "name": c.name,
                "kind": c.kind,
                "backend": c.backend,
                "cores": c.cores,
                "frequency_ghz": c.frequency_ghz,
                "gflops": {k: getattr(c.gflops, k) for k in WORK_KINDS},
                "memory_bandwidth_gbs": c.memory_bandwidth_gbs,
                "kernel_overhead_us": c.kernel_overhead_us,
                "sharing": c.sharing,
                "concurrency_loss": c.concurrency_loss,
            }
            if c.sharing == "round_robin":
                entry["timeslice_us"] = c.timeslice_us
            if c.cpus:
                entry["cpus"] = list(c.cpus)
            if c.device:
                entry["device"] = c.device
            if c.interference:
                entry["interference"] = c.interference
            if c.parallelism != 1.0:
                entry["parallelism"] = c.parallelism
            if c.model_concurrency_loss:
                entry["model_concurrency_loss"] = dict(c.model_concurrency_loss)
            components.append(entry)
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "calibrated": self.calibrated,
            "reference_component": self.reference_component,
            "components": components,
            "transfers": {
                k: {"fixed_us": t.fixed_us, "us_per_mb": t.us_per_mb, "us_per_mb2": t.us_per_mb2}
                for k, t in self.transfers
            },
        }
        if self.unit_times:
            table: dict[str, dict[str, list[float]]] = {}
            for u in self.unit_times:
                table.setdefault(u.model, {})[u.component] = [float(f"{t:.6g}") for t in u.seconds]
            data["unit_times"] = table
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def builtin_platforms() -> tuple[str, ...]:
    """Names of the platforms shipped with the package."""
    folder = resources.files("rankmap_ros").joinpath(_DATA)
    return tuple(sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_platform(name_or_path: str | Path) -> Platform:
    """A built-in platform by name (e.g. 'orange_pi_5') or a platform YAML file by path."""
    text = str(name_or_path)
    if not text.strip():
        raise PlatformError(f"no platform given: a built-in ({', '.join(builtin_platforms())}) or a platform file")
    path = Path(text)
    if text in builtin_platforms():
        source = resources.files("rankmap_ros").joinpath(f"{_DATA}/{text}.yaml")
        return parse_platform(yaml.safe_load(source.read_text()), source=text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise PlatformError(f"platform file {path} {not_a_file(path)}")
        try:
            data = load_yaml(path.read_text())
        except yaml.YAMLError as exc:
            raise PlatformError(f"platform file {path} is not valid YAML: {yaml_problem(exc)}") from exc
        except UnicodeDecodeError:
            raise PlatformError(f"platform file {path} is not a text file (not UTF-8)") from None
        except OSError as exc:
            raise PlatformError(f"platform file {path} cannot be read: {exc.strerror}") from None
        return parse_platform(data, source=str(path))
    raise PlatformError(f"unknown platform {text!r}: not a built-in ({', '.join(builtin_platforms())}) nor a file")


def parse_platform(data: Any, source: str = "platform") -> Platform:
    """Validate a platform's dict form (as loaded from YAML) field by field."""
    try:
        return _Parser(source).platform(data)
    except PlatformError as exc:
        raise PlatformError(f"{source}: {exc}") from None


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    @staticmethod
    def fields(where: str, data: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
        prefix = f"{where}: " if where else ""
        if not isinstance(data, Mapping):
            raise PlatformError(f"{prefix}expected a mapping, got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in required + optional)
        if unknown:
            join = f"{where}." if where else ""
            raise PlatformError(f"{join}{unknown[0]}: unknown field (allowed: {', '.join(required + optional)})")
        for key in required:
            if key not in data:
                join = f"{where}." if where else ""
                raise PlatformError(f"{join}{key}: missing required field")
        return data

    @staticmethod
    def number(where: str, value: Any, positive: bool = True) -> float:
        if not finite_number(value) or value < 0 or (positive and value == 0):
            want = "a positive number" if positive else "a number >= 0"
            raise PlatformError(f"{where}: expected {want}, got {value!r}")
        return float(value)

    @staticmethod
    def integer(where: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PlatformError(f"{where}: expected a positive integer, got {value!r}")
        return value

    @staticmethod
    def choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise PlatformError(f"{where}: expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    @staticmethod
    def text(where: str, value: Any) -> str:
        if not isinstance(value, str):
            raise PlatformError(f"{where}: expected a string, got {value!r}")
        return value

    def name(self, where: str, value: Any) -> str:
        """A platform's or component's name: what reports, files and mappings are keyed by."""
        text = self.text(where, value)
        if not text.strip():
            raise PlatformError(f"{where}: must not be empty")
        return text

    def component(self, where: str, data: Any) -> Component:
        required = (
            "name",
            "kind",
            "cores",
            "frequency_ghz",
            "gflops",
            "memory_bandwidth_gbs",
            "kernel_overhead_us",
            "sharing",
            "concurrency_loss",
        )
        d = self.fields(
            where,
            data,
            required,
            ("timeslice_us", "backend", "cpus", "device", "interference", "parallelism", "model_concurrency_loss"),
        )
        name = self.name(f"{where}.name", d["name"])
        if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
            raise PlatformError(f"{where}.name: expected letters, digits and '_' starting with a letter, got {name!r}")
        kind = self.choice(f"{where}.kind", d["kind"], KINDS)
        rates = self.fields(f"{where}.gflops", d["gflops"], WORK_KINDS)
        cpus = d.get("cpus", [])
        if not isinstance(cpus, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus
        ):
            raise PlatformError(f"{where}.cpus: expected a list of CPU numbers, got {cpus!r}")
        loss = self.number(f"{where}.concurrency_loss", d["concurrency_loss"], positive=False)
        if loss >= 1:
            raise PlatformError(f"{where}.concurrency_loss: expected a fraction in [0, 1), got {loss!r}")
        interference = self.number(f"{where}.interference", d.get("interference", 0.0), positive=False)
        if interference >= 1:
            raise PlatformError(f"{where}.interference: expected a fraction in [0, 1), got {interference!r}")
        parallelism = self.number(f"{where}.parallelism", d.get("parallelism", 1.0))
        if parallelism < 1:
            raise PlatformError(f"{where}.parallelism: expected a number of stages >= 1, got {parallelism!r}")
        per_model = self.model_losses(f"{where}.model_concurrency_loss", d.get("model_concurrency_loss", {}))
        return Component(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            cores=self.integer(f"{where}.cores", d["cores"]),
            frequency_ghz=self.number(f"{where}.frequency_ghz", d["frequency_ghz"]),
            gflops=WorkRates(*(self.number(f"{where}.gflops.{k}", rates[k]) for k in WORK_KINDS)),
            memory_bandwidth_gbs=self.number(f"{where}.memory_bandwidth_gbs", d["memory_bandwidth_gbs"]),
            kernel_overhead_us=self.number(f"{where}.kernel_overhead_us", d["kernel_overhead_us"], positive=False),
            sharing=self.choice(f"{where}.sharing", d["sharing"], SHARINGS),  # type: ignore[arg-type]
            concurrency_loss=loss,
            timeslice_us=self.number(f"{where}.timeslice_us", d.get("timeslice_us", 0.0), positive=False),
            backend=self.choice(f"{where}.backend", d.get("backend", "cpu" if kind == "cpu" else "opencl"), BACKENDS),  # type: ignore[arg-type]
            cpus=tuple(cpus),
            device=self.text(f"{where}.device", d.get("device", "")),
            interference=interference,
            parallelism=parallelism,
            model_concurrency_loss=per_model,
        )

    def model_losses(self, where: str, data: Any) -> tuple[tuple[str, float], ...]:
        from rankmap_ros.core.zoo import ZooError, canonical_name

        if not isinstance(data, Mapping):
            raise PlatformError(f"{where}: expected a mapping of model -> fraction, got {data!r}")
        out: list[tuple[str, float]] = []
        for model, value in data.items():
            try:
                name = canonical_name(str(model))
            except ZooError as exc:
                raise PlatformError(f"{where}.{model}: {exc}") from None
            loss = self.number(f"{where}.{model}", value, positive=False)
            if loss >= 1:
                raise PlatformError(f"{where}.{model}: expected a fraction in [0, 1), got {loss!r}")
            if any(name == known for known, _ in out):
                raise PlatformError(f"{where}.{model}: {name} is given twice (under two spellings)")
            out.append((name, loss))
        return tuple(sorted(out))

    def transfer(self, where: str, data: Any) -> TransferCost:
        d = self.fields(where, data, ("fixed_us", "us_per_mb", "us_per_mb2"))
        return TransferCost(
            *(self.number(f"{where}.{k}", d[k], positive=False) for k in ("fixed_us", "us_per_mb", "us_per_mb2"))
        )

    def platform(self, data: Any) -> Platform:
        d = self.fields(
            "",
            data,
            ("name", "components", "transfers"),
            ("description", "calibrated", "reference_component", "unit_times"),
        )
        name = self.name("name", d["name"])
        entries = d["components"]
        if not isinstance(entries, list) or not entries:
            raise PlatformError(f"components: expected a non-empty list, got {entries!r}")
        components = tuple(self.component(f"components[{i}]", e) for i, e in enumerate(entries))
        seen: set[str] = set()
        # the planner takes CPU clusters as independent: no core in two of them (a GPU's cpus are
        # where its host process runs, which it may share: discovery gives every GPU the spare ones)
        owner: dict[int, str] = {}
        for i, c in enumerate(components):
            if c.name in seen:
                raise PlatformError(f"components[{i}].name: duplicate component name {c.name!r}")
            seen.add(c.name)
            for cpu in c.cpus if c.kind == "cpu" else ():
                if cpu in owner:
                    again = "listed twice" if owner[cpu] == c.name else f"also in {owner[cpu]!r}"
                    raise PlatformError(f"components[{i}].cpus: CPU {cpu} is {again}")
                owner[cpu] = c.name
            if c.kind == "cpu" and c.cpus and c.cores != len(c.cpus):
                raise PlatformError(
                    f"components[{i}].cores: {c.cores} cores, but cpus lists {len(c.cpus)} ({list(c.cpus)})"
                )
        needed = tuple(k for k in TRANSFER_KEYS if _transfer_possible(k, components))
        raw = self.fields("transfers", d["transfers"], needed, tuple(k for k in TRANSFER_KEYS if k not in needed))
        transfers = tuple((k, self.transfer(f"transfers.{k}", raw[k])) for k in TRANSFER_KEYS if k in raw)
        gpus = [c.name for c in components if c.kind == "gpu"]
        reference = self.text(
            "reference_component", d.get("reference_component", gpus[0] if gpus else components[0].name)
        )
        if reference not in seen:
            raise PlatformError(
                f"reference_component: {reference!r} is not one of {', '.join(c.name for c in components)}"
            )
        calibrated = d.get("calibrated", False)
        if not isinstance(calibrated, bool):
            raise PlatformError(f"calibrated: expected true or false, got {calibrated!r}")
        return Platform(
            name=name,
            components=components,
            transfers=transfers,
            reference_component=reference,
            calibrated=calibrated,
            description=self.text("description", d.get("description", "")),
            unit_times=self.unit_times(d.get("unit_times", {}), seen),
        )

    def unit_times(self, data: Any, components: set[str]) -> tuple[MeasuredUnits, ...]:
        if not data:
            return ()
        from rankmap_ros.core.unitvec import profile
        from rankmap_ros.core.zoo import ZooError, canonical_name

        if not isinstance(data, Mapping):
            raise PlatformError(f"unit_times: expected a mapping of model -> component -> seconds, got {data!r}")
        out: list[MeasuredUnits] = []
        for model, per_component in data.items():
            where = f"unit_times.{model}"
            try:
                name = canonical_name(str(model))  # measured_units looks them up by canonical name
                count = len(profile(name))
            except ZooError as exc:
                raise PlatformError(f"{where}: {exc}") from None
            if any(u.model == name for u in out):
                raise PlatformError(f"{where}: {name} is given twice (under two spellings)")
            if not isinstance(per_component, Mapping):
                raise PlatformError(f"{where}: expected a mapping of component -> seconds, got {per_component!r}")
            for component, seconds in per_component.items():
                here = f"{where}.{component}"
                if component not in components:
                    raise PlatformError(f"{here}: no such component ({', '.join(sorted(components))})")
                if not isinstance(seconds, list) or len(seconds) != count:
                    raise PlatformError(f"{here}: expected a list of {count} unit times, got {seconds!r}")
                values = tuple(self.number(f"{here}[{i}]", t) for i, t in enumerate(seconds))
                out.append(MeasuredUnits(name, str(component), values))
        return tuple(out)


def _transfer_possible(key: str, components: tuple[Component, ...]) -> bool:
    """Whether a stage boundary of this kind pair can occur (two stages never share a component)."""
    src, dst = key.split("_to_")
    count = {k: sum(1 for c in components if c.kind == k) for k in KINDS}
    return count[src] >= 2 if src == dst else count[src] >= 1 and count[dst] >= 1
