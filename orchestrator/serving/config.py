"""Typed application config: what ``build_app(args)`` takes, from ``serve_config.yaml``'s ``args:``.

Strict (``extra="forbid"``) so a typo fails at ``serve run`` time with the field's name, not at 3 a.m.: that
includes each backend's ``engine_config`` and ``default_options``, validated against the engine's own models
when the application is built. Every field has a description; they are the config reference (``ocrserve
config-schema`` prints them as JSON schema). The deployment names of the app's own deployments live here too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from backends.registry import check_engine_kind, check_engine_settings
from deployments.backend import BackendSpec
from orchestrator.jobs.settings import JobSettings
from orchestrator.serving.cascade import CascadePolicy
from orchestrator.serving.shadow import ShadowSettings
from shared.documents import DocumentLimits

ROUTER_NAME = "router"
"""Serve deployment name of the router (the HTTP ingress)."""
JOBS_NAME = "jobs"
"""Serve deployment name of the job consumer (chunks from the queue to the backends)."""
RESERVED_NAMES = (ROUTER_NAME, JOBS_NAME)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SERVE_DEFAULT_NUM_CPUS = 1.0
"""CPUs Ray Serve gives a replica whose ray_actor_options name none."""


PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]

TENSOR_PARALLEL_STRATEGY: PlacementStrategy = "STRICT_PACK"
"""Where a tensor-parallel replica's GPUs go when the config names no strategy: all on one node. Tensor parallelism
exchanges activations at every layer (NCCL all-reduce), which only NVLink/PCIe within a node makes cheap; Ray
Serve LLM's default is ``PACK`` (one node if possible, else several), which would rather start slowly than not at
all - here a replica that cannot have one node waits, and says so in Serve's status."""


class DeploymentOptions(_Strict):
    """Ray Serve deployment options (a subset of ``@serve.deployment``'s, same names and meaning)."""

    num_replicas: int | Literal["auto"] | None = Field(default=1, description="Fixed replica count, or 'auto'.")
    autoscaling_config: dict[str, Any] | None = Field(
        default=None,
        description="Serve autoscaling (min/max_replicas, target_ongoing_requests...); overrides num_replicas.",
    )
    max_ongoing_requests: int | None = Field(default=None, gt=0, description="Concurrent requests per replica.")
    max_queued_requests: int | None = Field(
        default=None, description="Requests queued per caller before Serve refuses them (-1: unbounded)."
    )
    ray_actor_options: dict[str, Any] = Field(
        default_factory=dict,
        description="num_cpus, num_gpus, memory, resources, accelerator_type, label_selector, runtime_env...",
    )
    health_check_period_s: float | None = Field(default=None, gt=0, description="Seconds between health checks.")
    health_check_timeout_s: float | None = Field(default=None, gt=0, description="Health check deadline in seconds.")
    graceful_shutdown_timeout_s: float | None = Field(default=None, ge=0, description="Drain time on shutdown.")
    placement_group_bundles: list[dict[str, float]] | None = Field(
        default=None,
        description="Resources of one replica as a placement group (Serve's option): the replica runs in the first "
        "bundle, which must hold its ray_actor_options; the other bundles are reserved with it (for vLLM's "
        "tensor-parallel workers, one GPU each). Derived for engines sharding over several GPUs "
        "(tensor_parallel_size > 1) when not given.",
    )
    placement_group_strategy: PlacementStrategy | None = Field(
        default=None,
        description="How a replica's bundles spread over nodes (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD); needs "
        "placement_group_bundles. Derived bundles default to STRICT_PACK (one node).",
    )

    @field_validator("autoscaling_config")
    @classmethod
    def _known_autoscaling_keys(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        """Ray silently drops unknown keys (``min_replica: 2`` would leave min_replicas at 1): refuse them."""
        if v is None:
            return v
        from ray.serve.config import AutoscalingConfig

        unknown = sorted(set(v) - set(AutoscalingConfig.model_fields))
        if unknown:
            raise ValueError(
                f"unknown autoscaling_config keys {unknown}; known: {sorted(AutoscalingConfig.model_fields)}"
            )
        return v

    @model_validator(mode="after")
    def _placement_group_fits(self) -> DeploymentOptions:
        """Serve's own rules for placement groups, refused here with the option names: a strategy needs bundles,
        and the replica runs in the first bundle, so its ray_actor_options must fit there."""
        bundles = self.placement_group_bundles
        if bundles is None:
            if self.placement_group_strategy is not None:
                raise ValueError("placement_group_strategy needs placement_group_bundles")
            return self
        if not bundles or any(not b or any(v < 0 for v in b.values()) for b in bundles):
            raise ValueError(f"placement_group_bundles must be non-empty resource dicts, got {bundles}")
        first = bundles[0]
        for name, need in self.actor_resources().items():
            if first.get(name, 0.0) < need:
                raise ValueError(
                    f"the replica runs in the first placement group bundle {first}, which must hold its own "
                    f"ray_actor_options ({name}: {need:g})"
                )
        return self

    def actor_resources(self) -> dict[str, float]:
        """What the replica actor itself asks: CPU (Serve's default 1), GPU, memory and custom resources, zeros
        dropped."""
        actor = self.ray_actor_options
        wanted = {
            "CPU": float(actor.get("num_cpus", SERVE_DEFAULT_NUM_CPUS)),
            "GPU": float(actor.get("num_gpus", 0) or 0),
            "memory": float(actor.get("memory", 0) or 0),
            **{k: float(v) for k, v in (actor.get("resources") or {}).items()},
        }
        return {k: v for k, v in wanted.items() if v > 0}

    def resources(self) -> dict[str, float]:
        """What one replica reserves: its actor's resources, or the sum of its placement group's bundles.

        With ``STRICT_PACK`` (the strategy derived for tensor parallelism) that is what one node must hold."""
        if self.placement_group_bundles is None:
            return {k: v for k, v in self.actor_resources().items() if k != "memory"}
        total: dict[str, float] = {}
        for bundle in self.placement_group_bundles:
            for name, value in bundle.items():
                total[name] = total.get(name, 0.0) + float(value)
        return {k: v for k, v in total.items() if v > 0 and k != "memory" and not k.startswith("accelerator_type:")}

    def gpus_per_bundle(self) -> list[float]:
        """GPUs of each placement group bundle (empty without bundles)."""
        return [float(b.get("GPU", 0)) for b in self.placement_group_bundles or []]

    def for_devices(self, devices: int) -> DeploymentOptions:
        """These options for a replica whose engine shards over ``devices`` GPUs (tensor parallelism).

        One device: unchanged. Several: a placement group like Ray Serve LLM's (``LLMServer.get_deployment_options``):
        one bundle of one GPU per device, the replica's own resources added to the first (the replica runs there),
        ``accelerator_type`` as a resource in every bundle, and strategy ``STRICT_PACK`` unless given. Explicit
        bundles are kept and checked instead.

        Raises:
            ValueError: a combination vLLM or Ray could never place: the replica asking for GPUs itself (vLLM's
                workers take one per bundle; a bundle with two GPUs is refused by vLLM), explicit bundles with
                fewer one-GPU bundles than devices, or a bundle with more than one GPU.
        """
        if devices <= 1:
            return self
        if self.placement_group_bundles is not None:
            gpus = self.gpus_per_bundle()
            if any(g > 1 for g in gpus):
                raise ValueError(
                    f"placement_group_bundles {self.placement_group_bundles}: vLLM runs one worker per GPU bundle "
                    "and refuses bundles with more than one GPU"
                )
            if sum(1 for g in gpus if g > 0) < devices:
                raise ValueError(
                    f"tensor_parallel_size {devices} needs {devices} bundles of one GPU, placement_group_bundles "
                    f"has {sum(1 for g in gpus if g > 0)}"
                )
            return self
        actor = self.actor_resources()
        if actor.get("GPU"):
            raise ValueError(
                f"tensor_parallel_size {devices}: the replica's GPUs are its placement group's bundles (one per "
                f"vLLM worker), so the replica itself asks for none; set ray_actor_options.num_gpus to 0 (it is "
                f"{actor['GPU']:g})"
            )
        accelerator = self.ray_actor_options.get("accelerator_type")
        tag = {f"accelerator_type:{accelerator}": 0.001} if accelerator else {}
        first = {**actor, "GPU": 1.0, **tag}
        bundles = [first] + [{"GPU": 1.0, **tag} for _ in range(devices - 1)]
        return self.model_copy(
            update={
                "placement_group_bundles": bundles,
                "placement_group_strategy": self.placement_group_strategy or TENSOR_PARALLEL_STRATEGY,
            }
        )

    def min_replicas(self) -> int:
        """Replicas that must be placed for the deployment to run (autoscaling's minimum, 'auto' counts 1)."""
        if self.autoscaling_config:
            return int(self.autoscaling_config.get("min_replicas", 1))
        return self.num_replicas if isinstance(self.num_replicas, int) else 1

    def max_replicas(self) -> int:
        """Replicas the deployment may grow to (autoscaling's maximum, else the fixed count)."""
        if self.autoscaling_config:
            return int(self.autoscaling_config.get("max_replicas", 1))
        return self.num_replicas if isinstance(self.num_replicas, int) else 1

    def to_serve_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options()``."""
        opts = self.model_dump(exclude_none=True)
        if not opts.get("ray_actor_options"):
            opts.pop("ray_actor_options", None)
        if self.autoscaling_config is not None:
            opts.pop("num_replicas", None)
        return opts


class BackendConfig(_Strict):
    """One backend: an engine kind, its config, default request options and how it is deployed."""

    engine: str = Field(
        description="Engine kind: rapidocr, deepseek, mineru; or an engine class as 'package.module:Class'."
    )
    engine_config: dict[str, Any] = Field(default_factory=dict, description="The engine's own config fields.")
    default_options: dict[str, Any] = Field(
        default_factory=dict, description="Per-request option defaults; changeable at run time (user_config)."
    )
    enabled: bool = Field(default=True, description="Deploy this backend (false keeps the entry but skips it).")
    max_rss_mb: int | None = Field(
        default=None, gt=0, description="Recycle a replica whose resident memory passes this (MiB); see BackendSpec."
    )
    deployment: DeploymentOptions = Field(default_factory=DeploymentOptions, description="Ray Serve options.")

    _devices: int = PrivateAttr(default=1)

    @model_validator(mode="after")
    def _engine_settings_valid(self) -> BackendConfig:
        """engine_config and default_options checked against the engine's own models, now rather than in a replica;
        and the replica's placement checked against the GPUs the engine shards over."""
        engine_config = check_engine_settings(self.engine, self.engine_config, self.default_options)
        self._devices = engine_config.devices_per_replica()
        self.deployment.for_devices(self._devices)  # raises for a combination that can never be placed
        return self

    def deployment_options(self) -> DeploymentOptions:
        """The Serve options this backend deploys with: ``deployment``, with a placement group derived when the
        engine shards a replica over several GPUs (:meth:`DeploymentOptions.for_devices`)."""
        return self.deployment.for_devices(self._devices)

    def spec(self, name: str) -> BackendSpec:
        return BackendSpec(name=name, engine=self.engine, engine_config=self.engine_config, max_rss_mb=self.max_rss_mb)


class RouterSettings(_Strict):
    """What the router replica needs to decide and to refuse."""

    limits: DocumentLimits = Field(default_factory=DocumentLimits, description="Upload, page and pixel limits.")
    auto_order: list[str] = Field(
        default_factory=lambda: ["deepseek-ocr", "mineru", "rapidocr"],
        description="Preference order for backend 'auto': the first deployed, ready backend that reads the type.",
    )
    default_backend: str = Field(default="auto", description="Backend used when a request names none.")
    request_timeout_s: float = Field(default=300.0, gt=0, description="Default time a request may take.")
    max_request_timeout_s: float = Field(default=1800.0, gt=0, description="Cap on a request's own timeout_s.")
    status_ttl_s: float = Field(default=5.0, ge=0, description="How long a backend's health answer is reused.")
    cascades: dict[str, CascadePolicy] = Field(
        default_factory=dict,
        description="Cascade policies by name (clients send the name as the backend): a cheap backend first, a "
        "stronger one for the pages whose first answer meets a rule.",
    )
    shadow: ShadowSettings = Field(
        default_factory=ShadowSettings,
        description="Drift watch: a fraction of answered requests also read, in the background, by a paired backend.",
    )
    api_key: SecretStr | None = Field(default=None, description="When set, requests need 'x-api-key: <key>'.")
    debug_errors: bool = Field(default=False, description="Put exception text in 500 answers (never in production).")


class AppArgs(_Strict):
    """The whole application: backends behind one router."""

    backends: dict[str, BackendConfig] = Field(
        default_factory=lambda: {
            "rapidocr": BackendConfig(
                engine="rapidocr", deployment=DeploymentOptions(ray_actor_options={"num_cpus": 0.5})
            )
        },
        description="Backends by name (the name clients send). The CPU default is RapidOCR alone.",
    )
    router: RouterSettings = Field(default_factory=RouterSettings, description="Router behaviour and limits.")
    router_deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(ray_actor_options={"num_cpus": 0.1}),
        description="Ray Serve options of the router (the HTTP ingress), scaled independently of backends.",
    )

    allow_custom_engines: bool = Field(
        default=False,
        description="Allow backends whose engine is an import path (package.module:Class) rather than a registered "
        "kind: your own engines, or the test suite's fake. No shipped profile sets it.",
    )

    jobs_enabled: bool = Field(default=True, description="Deploy the asynchronous job API (/v1/jobs).")
    jobs: JobSettings = Field(default_factory=JobSettings, description="Job API settings.")
    jobs_deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(
            num_replicas=1, max_ongoing_requests=8, ray_actor_options={"num_cpus": 0.1}
        ),
        description="Ray Serve options of the job consumer: any number of replicas, each running "
        "max_ongoing_requests chunks at once (the queue's overall bound is replicas x that). With a Redis store, "
        "an autoscaling_config without a policy scales on the queue's length (AsyncInferenceAutoscalingPolicy).",
    )

    @model_validator(mode="before")
    @classmethod
    def _engines_registered_or_allowed(cls, data: Any) -> Any:
        """Custom engines only when allowed, checked before any backend's engine is imported to validate it."""
        if isinstance(data, dict):
            try:  # read as the field will be ("true" from an environment-built config counts)
                allow = TypeAdapter(bool).validate_python(data.get("allow_custom_engines", False))
            except ValidationError:
                allow = False  # the field's own validation says what is wrong with it
            for backend in (data.get("backends") or {}).values():
                engine = backend.get("engine") if isinstance(backend, dict) else getattr(backend, "engine", None)
                if isinstance(engine, str):
                    check_engine_kind(engine, allow_custom=allow)
        return data

    @model_validator(mode="after")
    def _check(self) -> AppArgs:
        enabled = [n for n, b in self.backends.items() if b.enabled]
        if not enabled:
            raise ValueError("at least one backend must be enabled")
        for reserved in RESERVED_NAMES:
            if reserved in self.backends:
                raise ValueError(f"'{reserved}' is reserved for a deployment of the app; rename that backend")
        scaling = self.jobs_deployment.autoscaling_config
        queue_readable = self.jobs.store.startswith(("redis", "env:"))  # env:NAME: known only in the replicas
        if self.jobs_enabled and scaling and "policy" not in scaling and not queue_readable:
            raise ValueError(
                "jobs_deployment.autoscaling_config scales consumers on the queue's length, which is read from "
                "Redis: set jobs.store to a redis:// URL, or give the autoscaling_config a policy of your own"
            )
        default = self.router.default_backend
        if default != "auto" and default not in enabled and default not in self.router.cascades:
            raise ValueError(f"default_backend {default!r} is not an enabled backend or cascade ({enabled})")
        for name, policy in self.router.cascades.items():
            if name in self.backends or name == "auto":
                raise ValueError(f"cascade {name!r} has the name of a backend; give it its own")
            for role, backend in (("first", policy.first), ("then", policy.then)):
                if backend not in enabled:
                    raise ValueError(f"cascade {name!r}: {role} backend {backend!r} is not enabled ({enabled})")
        for primary, shadow in self.router.shadow.pairs.items():
            if primary not in enabled or shadow not in enabled or primary == shadow:
                raise ValueError(f"shadow pair {primary!r} -> {shadow!r} must name two different enabled backends")
        return self

    def enabled_backends(self) -> dict[str, BackendConfig]:
        return {n: b for n, b in self.backends.items() if b.enabled}

    def deployments(self) -> dict[str, DeploymentOptions]:
        """Every Serve deployment this app creates, by name, with its options: the one source of what the app
        deploys, used by the builder, the local start's GPU check and the KubeRay generator."""
        out = {n: b.deployment_options() for n, b in self.enabled_backends().items()}
        out[ROUTER_NAME] = self.router_deployment
        if self.jobs_enabled:
            out[JOBS_NAME] = self.jobs_deployment
        return out
