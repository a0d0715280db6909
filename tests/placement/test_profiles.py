"""The GPU profiles (one box, cluster) and the scaling guide's examples: what they pin, how they scale, and that
Ray accepts every option. No cluster needed (~3 s).

Ray checks some options only when a replica starts, on the cluster, and ignores others: an
``autoscaling_config`` key with a typo is dropped without a word (``min_replica: 2`` leaves min_replicas at 1),
and ``runtime_env`` is validated where the replica's environment is built. These tests check them here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.runtime_env import RuntimeEnv
from ray.serve.config import AutoscalingConfig

from benchmarks.support.fake_engine import FAKE
from orchestrator.builder import build_app
from orchestrator.ops import kuberay
from orchestrator.ops.local import PROFILES_DIR, REPO_CONFIG, load_config, required_gpus
from orchestrator.serving.config import AppArgs, DeploymentOptions

ONE_BOX = PROFILES_DIR / "gpu-one-box.yaml"
CLUSTER = PROFILES_DIR / "gpu-cluster.yaml"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"
GPU_MODELS = ("deepseek-ocr", "mineru")


def app_args(path: Path) -> AppArgs:
    return AppArgs.model_validate(load_config(path).applications[0].args)


def all_deployments(args: AppArgs) -> dict[str, DeploymentOptions]:
    return {**{n: b.deployment for n, b in args.enabled_backends().items()}, "router": args.router_deployment}


def check_options_the_way_ray_will(args: AppArgs) -> None:
    """Everything Ray would otherwise check late, or not at all."""
    build_app(args)  # Serve's own validation of every deployment's options (resources, label_selector...)
    for name, opts in all_deployments(args).items():
        auto = opts.autoscaling_config
        if auto is not None:
            unknown = set(auto) - set(AutoscalingConfig.model_fields)
            assert not unknown, f"{name}: autoscaling_config keys Ray would silently ignore: {unknown}"
            parsed = AutoscalingConfig(**auto)
            assert parsed.min_replicas <= parsed.max_replicas, name
        env = opts.ray_actor_options.get("runtime_env")
        if env is not None:
            unknown = set(env) - RuntimeEnv.known_fields
            assert not unknown, f"{name}: runtime_env fields Ray does not know: {unknown}"
            RuntimeEnv(**env)  # pip/uv/conda/py_executable checks


@pytest.mark.parametrize("path", [ONE_BOX, CLUSTER, REPO_CONFIG], ids=lambda p: p.name)
def test_gpu_configs_pass_rays_checks_early(path: Path):
    check_options_the_way_ray_will(app_args(path))


def test_one_box_gives_each_model_one_gpu_and_pins_nothing_else():
    args = app_args(ONE_BOX)
    for name in GPU_MODELS:
        actor = args.backends[name].deployment.ray_actor_options
        assert actor["num_gpus"] == 1, name
        # A custom resource or label would never be satisfied by a plain `ray start --head` on the box.
        assert not actor.get("resources") and not actor.get("label_selector"), name
    assert args.backends["rapidocr"].deployment.ray_actor_options.get("num_gpus", 0) == 0
    assert required_gpus(load_config(ONE_BOX)) == 2  # `ocrserve serve` refuses a box with fewer


def test_cluster_pins_each_model_to_its_own_node_kind():
    args = app_args(CLUSTER)
    pins = {}
    for name in GPU_MODELS:
        actor = args.backends[name].deployment.ray_actor_options
        assert actor["num_gpus"] == 1, name  # its own card (CUDA_VISIBLE_DEVICES) on that node
        (resource,) = actor["resources"]
        pins[name] = resource
    assert pins == {"deepseek-ocr": "deepseek_gpu", "mineru": "mineru_gpu"}
    # ...and on KubeRay exactly one worker group advertises each pin.
    groups = kuberay.load_layout(kuberay.DEFAULT_LAYOUT).workers
    for name, resource in pins.items():
        assert [g.name for g in groups if resource in g.ray_resources] == [f"{name.split('-')[0]}-gpu"]


def test_cluster_autoscales_every_deployment_with_targets_below_capacity():
    args = app_args(CLUSTER)
    for name, opts in all_deployments(args).items():
        auto = opts.autoscaling_config
        assert auto is not None, f"{name} has a fixed replica count in the cluster profile"
        assert auto["target_ongoing_requests"] <= opts.max_ongoing_requests, name
    # MinerU parses one document at a time: any queue means it is time for another replica.
    assert args.backends["mineru"].deployment.autoscaling_config["target_ongoing_requests"] == 1
    # The router scales on its own and is never a single point of failure.
    assert args.router_deployment.autoscaling_config["min_replicas"] >= 2


def guide_examples() -> list[dict[str, Any]]:
    """The YAML blocks of docs/scaling.md that are builder args with a per-deployment runtime_env."""
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), flags=re.S)
    parsed = [yaml.safe_load(b) for b in blocks]
    return [b for b in parsed if isinstance(b, dict) and "backends" in b and "runtime_env" in str(b)]


def test_guides_separate_environment_examples_are_valid():
    examples = guide_examples()
    assert examples, "docs/scaling.md lost its runtime_env example"
    for example in examples:
        args = AppArgs.model_validate(example)
        check_options_the_way_ray_will(args)
        envs = {n: b.deployment.ray_actor_options.get("runtime_env") for n, b in args.backends.items()}
        assert len({repr(e) for e in envs.values() if e}) >= 2, "the example should give two models two envs"


def test_autoscaling_typo_is_refused_by_our_config_though_ray_ignores_it():
    from ray.serve.config import AutoscalingConfig

    assert AutoscalingConfig.model_validate({"min_replica": 2}).min_replicas == 1  # Ray drops the typo silently...
    with pytest.raises(ValueError, match="min_replica"):  # ...our config refuses it at deploy time
        AppArgs.model_validate(
            {
                "backends": {"x": {"engine": FAKE, "deployment": {"autoscaling_config": {"min_replica": 2}}}},
                "allow_custom_engines": True,
            }
        )
