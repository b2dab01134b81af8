"""Where dataset-wide work runs: in this process (``local``) or on a Ray cluster (``ray``).

A *task* is a module-level function ``task(handle, batch, params) -> results`` that turns a batch of items
(sentences, usually) into one result per item. :func:`run` applies it to every item and yields
``(index, result)`` pairs as they finish:

- ``local`` loads the model once (or uses the caller's handle) and runs the batches in order, in this process;
- ``ray`` starts a pool of Ray actors (``workers`` of them, each with ``cpus_per_worker``/``gpus_per_worker``),
  each loading the model once, and hands them batches as they become free. ``LOUPE_RAY_ADDRESS`` names an
  existing cluster (``ray://head:10001`` or ``head:6379``); without it a local Ray starts on demand and stops
  when the run ends.

Results do not depend on the engine: a task is given one item's worth of work at a time with its own seeds,
so the same items give the same numbers (up to float rounding across thread counts).

Models reach the workers by reference: a store id, the bundled encoder or a folder path, checked against the
driver's revision stamp (:func:`model_zoo.loading.model_revision`). On a cluster whose nodes do not share
``LOUPE_HOME``, the driver ships the model folder through Ray's object store and workers load that copy.

Stopping early: close the generator (``break`` out of the loop); the actors are killed and a Ray started here
is shut down.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from model_zoo import hosting, spec
from model_zoo.errors import LoupeError
from model_zoo.spec import setting

ADDRESS_ENV = "LOUPE_RAY_ADDRESS"
ENGINES = ("local", "ray")
Task = Callable[[Any, list[Any], dict[str, Any]], list[Any]]
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# environment the workers need to find the same store and obey the same limits as the driver
_FORWARD_ENV = ("LOUPE_", "HF_", "TRANSFORMERS_")


class EngineError(LoupeError):
    """The engine cannot run the work (Ray missing or unreachable, a worker failed to load the model)."""


@dataclass(frozen=True)
class EngineConfig:
    """Which engine runs a dataset-wide job, and with how many workers."""

    engine: str = setting("local", "Where the work runs: this machine's background process, or Ray",
                          choices=ENGINES)
    workers: int = setting(2, "Ray workers (each loads the model once)", min=1, max=256, hosted_max=4)
    cpus_per_worker: float = setting(1.0, "CPU cores each Ray worker reserves", min=0.25, max=64)
    gpus_per_worker: float = setting(0.0, "GPUs each Ray worker reserves (0: CPU only)", min=0.0, max=8)
    batch_size: int = setting(4, "Items handed to a Ray worker at a time (the local engine takes one at a time)",
                              min=1, max=256)


def ray_unavailable() -> str | None:
    """Why Ray cannot be chosen here, or None when it can.

    In hosted mode a job may use the operator's cluster (``LOUPE_RAY_ADDRESS``) but never start a Ray of its own
    on the shared server.
    """
    if find_spec("ray") is None:
        return "Ray is not installed on this server (pip install ray)."
    if hosting.hosted() and not os.environ.get(ADDRESS_ENV, "").strip():
        return "This server offers no Ray cluster; jobs run in its background process."
    return None


def config(values: dict[str, Any] | EngineConfig | None = None) -> EngineConfig:
    """An :class:`EngineConfig` from JSON (``None``: the defaults).

    Raises:
        ConfigError: a bad value.
        EngineError: Ray was chosen where it is not available (:func:`ray_unavailable`).
    """
    if isinstance(values, EngineConfig):
        spec.check(values, "engine")
        cfg = values
    else:
        cfg = spec.build(EngineConfig, values or {}, "engine")
    if cfg.engine == "ray" and (why := ray_unavailable()):
        raise EngineError(why)
    return cfg


def add_arguments(parser: Any) -> None:
    """``--engine local|ray``, ``--workers``, ``--cpus-per-worker``, ``--gpus-per-worker``, ``--batch-size``."""
    group = parser.add_argument_group("engine", f"where the work runs (Ray: {ADDRESS_ENV} names a cluster, "
                                                "otherwise a local Ray starts on demand)")
    spec.add_arguments(group, EngineConfig, scope="engine")


def from_args(args: Any) -> EngineConfig:
    """The :class:`EngineConfig` given on the command line (flags made by :func:`add_arguments`)."""
    return config(spec.from_args(args, EngineConfig))


def task_name(task: Task) -> str:
    """``module:function``: how a worker finds the task."""
    return f"{task.__module__}:{task.__qualname__}"


def _import_task(name: str) -> Task:
    module, _, func = name.partition(":")
    try:
        return getattr(import_module(module), func)
    except (ImportError, AttributeError) as err:
        raise EngineError(f"The task {name} cannot be imported on this worker: {err}") from err


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


@dataclass(frozen=True)
class ModelRef:
    """How a worker loads the model: a name or folder, the driver's revision, the label names, the device."""

    name: str
    revision: str
    labels: tuple[str, ...] | None
    device: str


def model_ref(model: str, handle: Any | None, device: str) -> ModelRef:
    """The reference workers load; with a handle, its folder and labels (so workers load what the caller has)."""
    from model_zoo import loading

    if handle is not None:
        path = handle.info.get("path")
        name = str(path) if path else handle.id
        return ModelRef(name, loading.model_revision(name, Path(path) if path else None),
                        tuple(handle.label_names), device)
    return ModelRef(str(model), loading.model_revision(model), None, device)


def run(task: Task, items: Sequence[Any], params: dict[str, Any], *, model: str = "", handle: Any | None = None,
        device: str = "auto", engine: EngineConfig | None = None) -> Generator[tuple[int, Any], None, None]:
    """Apply ``task`` to ``items`` in batches and yield ``(index, result)`` as results arrive.

    Args:
        task: a module-level function ``task(handle, batch, params) -> list`` (one result per item).
        items: what to process (JSON-able values for Ray: they travel to the workers).
        params: the task's settings, the same for every batch.
        model: the model to load (store id, folder, hub id) if ``handle`` is not given.
        handle: a loaded model; the local engine uses it as is, Ray workers load the same folder.
        engine: the engine and its workers (default: local).
    Raises:
        EngineError: Ray is missing or unreachable, or a worker could not load the model or run the task.
    """
    cfg = engine or EngineConfig()
    if not items:
        return
    if cfg.engine == "local":
        yield from _run_local(task, items, params, model, handle, device)
    else:
        yield from _run_ray(task, items, params, model_ref(model, handle, device), cfg)


def _run_local(task: Task, items: Sequence[Any], params: dict[str, Any], model: str, handle: Any | None,
               device: str) -> Iterator[tuple[int, Any]]:
    """One item at a time, so that progress and Cancel are as fine-grained as the work."""
    if handle is None:
        from model_zoo.loading import load

        handle = load(model, device=device)
    for i, item in enumerate(items):
        yield i, task(handle, [item], params)[0]


# --- Ray ---------------------------------------------------------------------------------------------

def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise EngineError("Ray is not installed here; install it (pip install ray) or use the local engine.") \
            from err
    return ray


def _env_vars() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV) and k != ADDRESS_ENV}
    env.setdefault("LOUPE_HOME", str(_loupe_home()))
    return env


def _loupe_home() -> Path:
    from model_zoo.paths import loupe_home

    return loupe_home()


def _project_packages() -> list[str]:
    """The folders of this project's packages the driver has imported: what a remote cluster needs of its code."""
    tops = {name.partition(".")[0] for name in list(sys.modules)}
    return sorted(str(_PROJECT_ROOT / t) for t in tops if (_PROJECT_ROOT / t / "__init__.py").is_file())


def start(cfg: EngineConfig) -> bool:
    """Connect to ``LOUPE_RAY_ADDRESS``, or start a local Ray sized for ``cfg``. Returns whether it started one.

    Raises:
        EngineError: Ray is missing, or the cluster cannot be reached.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    address = os.environ.get(ADDRESS_ENV, "").strip() or None
    env = _env_vars()
    try:
        if address:
            ray.init(address=address, log_to_driver=False, runtime_env={
                "env_vars": env, "py_modules": _project_packages()})
            return False
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=max(int(cfg.workers * cfg.cpus_per_worker + 0.999), 1),
                 num_gpus=int(cfg.workers * cfg.gpus_per_worker + 0.999), include_dashboard=False,
                 log_to_driver=False, object_store_memory=256 * 2**20, runtime_env={"env_vars": env})
    except Exception as err:  # ray raises ConnectionError, RuntimeError, ValueError... all mean "no cluster"
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise EngineError(f"Could not start or reach {where}: {err}") from err
    return True


def stop() -> None:
    """Shut down the Ray this process started or joined (nothing if none)."""
    if find_spec("ray") is not None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _pack(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


class _Worker:
    """A Ray actor: loads the model once, then runs batches of the task."""

    def __init__(self, task: str, ref: ModelRef, params: dict[str, Any], shipped: Any) -> None:
        from model_zoo import loading

        self.task = _import_task(task)
        self.params = params
        name = ref.name
        try:
            same = loading.model_revision(name) == ref.revision
        except LoupeError:
            same = False
        if not same:
            if shipped is None:
                raise EngineError(f"This worker sees another version of {ref.name} (or none): share LOUPE_HOME "
                                  "between the nodes, or let Loupe ship the model.")
            self._tmp = tempfile.TemporaryDirectory(prefix="loupe-model-")
            for file, data in shipped.items():
                (Path(self._tmp.name) / file).write_bytes(data)
            name = self._tmp.name
        labels = list(ref.labels) if ref.labels else None
        self.handle = loading.load(name, device=ref.device, labels=labels)

    def run(self, batch: list[Any]) -> list[Any]:
        return self.task(self.handle, batch, self.params)


def _run_ray(task: Task, items: Sequence[Any], params: dict[str, Any], ref: ModelRef,
             cfg: EngineConfig) -> Iterator[tuple[int, Any]]:
    ray = _ray()
    from ray.util import ActorPool

    started = start(cfg)
    actors: list[Any] = []
    try:
        shipped = None
        folder = Path(ref.name)
        if os.environ.get(ADDRESS_ENV) and folder.is_dir():
            shipped = ray.put(_pack(folder))
        elif os.environ.get(ADDRESS_ENV):
            from model_zoo import loading

            found, _ = loading.locate(ref.name)
            shipped = ray.put(_pack(found)) if found is not None else None
        worker = ray.remote(num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker)(_Worker)
        spans = _batches(len(items), cfg.batch_size)
        actors = [worker.remote(task_name(task), ref, params, shipped)
                  for _ in range(min(cfg.workers, len(spans)))]
        pool = ActorPool(actors)
        for n, span in enumerate(spans):
            pool.submit(lambda a, v: a.run.remote(v[1]), (n, [items[i] for i in span]))
        pending = {n: span for n, span in enumerate(spans)}
        order = list(pending)
        while pool.has_next():
            try:
                results = pool.get_next()  # in submission order: the same order as the local engine
            except Exception as err:
                raise EngineError(f"A Ray worker failed: {_cause(err)}") from err
            span = pending.pop(order.pop(0))
            yield from zip(span, results)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _cause(err: BaseException) -> str:
    """The worker's own error message, without Ray's wrapping and remote traceback."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        return str(cause)
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def timed_start(cfg: EngineConfig) -> float:
    """Seconds to start (or reach) Ray: the overhead benches quote apart from the work."""
    begin = time.perf_counter()
    start(cfg)
    return time.perf_counter() - begin
