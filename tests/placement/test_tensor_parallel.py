"""Multi-GPU (tensor-parallel) replicas, decided when the app is built: the placement group each replica gets, the
combinations refused before anything is deployed, and what the local GPU check and the KubeRay generator make of
it. No cluster needed; tests/placement/test_gpu_placement.py places such replicas on a simulated one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.support.fake_engine import FAKE
from orchestrator.builder import build_app
from orchestrator.ops import kuberay
from orchestrator.ops.local import PROFILES_DIR, load_config, required_gpus
from orchestrator.serving.config import AppArgs, BackendConfig, DeploymentOptions

CLUSTER = PROFILES_DIR / "gpu-cluster.yaml"


def tp_backend(size: int, **actor: object) -> dict:
    """A DeepSeek-on-vLLM backend sharding each replica over ``size`` GPUs."""
    return {
        "engine": "deepseek",
        "engine_config": {"engine": "vllm", "tensor_parallel_size": size},
        "deployment": {"ray_actor_options": {"num_cpus": 2, **actor}},
    }


def test_a_tensor_parallel_replica_gets_one_gpu_bundle_per_device_on_one_node():
    options = BackendConfig.model_validate(tp_backend(2, resources={"deepseek_gpu": 1})).deployment_options()
    # Ray Serve LLM's shape: the replica's own resources in the first bundle (it runs there), one GPU per worker
    assert options.placement_group_bundles == [{"CPU": 2.0, "deepseek_gpu": 1.0, "GPU": 1.0}, {"GPU": 1.0}]
    assert options.placement_group_strategy == "STRICT_PACK"
    assert options.resources() == {"CPU": 2.0, "deepseek_gpu": 1.0, "GPU": 2.0}
    serve = options.to_serve_options()
    assert serve["placement_group_bundles"] == options.placement_group_bundles
    assert serve["placement_group_strategy"] == "STRICT_PACK"
    # one device: nothing derived, the options as written
    assert BackendConfig.model_validate(tp_backend(1, num_gpus=1)).deployment_options().placement_group_bundles is None


def test_serve_accepts_the_derived_placement_group_when_the_app_is_built():
    """build_app runs Serve's own checks of every deployment's options (ReplicaConfig), the bundles included."""
    args = AppArgs.model_validate({"backends": {"deepseek-ocr": tp_backend(4, accelerator_type="H100")}})
    build_app(args)
    options = args.deployments()["deepseek-ocr"]
    assert len(options.placement_group_bundles or []) == 4
    # accelerator_type is a resource the replica and every worker ask for: every bundle must carry it
    assert all(b.get("accelerator_type:H100") == 0.001 for b in options.placement_group_bundles or [])


@pytest.mark.parametrize(
    ("backend", "refusal"),
    [
        # the replica holding a GPU itself: vLLM's first worker would need a second GPU in the first bundle
        (tp_backend(2, num_gpus=1), "num_gpus to 0"),
        # explicit bundles that cannot hold the workers
        (
            {**tp_backend(2), "deployment": {"placement_group_bundles": [{"CPU": 2, "GPU": 1}]}},
            "needs 2 bundles of one GPU",
        ),
        (
            {**tp_backend(2), "deployment": {"placement_group_bundles": [{"CPU": 2, "GPU": 2}]}},
            "more than one GPU",
        ),
        # Serve's own rules, refused with the option names
        ({"engine": FAKE, "deployment": {"placement_group_strategy": "PACK"}}, "needs placement_group_bundles"),
        (
            {
                "engine": FAKE,
                "deployment": {"placement_group_bundles": [{"CPU": 1}], "ray_actor_options": {"num_cpus": 2}},
            },
            "first placement group bundle",
        ),
        # tensor parallelism is vLLM's: the transformers engine runs on one GPU
        (
            {"engine": "deepseek", "engine_config": {"engine": "transformers", "tensor_parallel_size": 2}},
            "vllm only",
        ),
    ],
)
def test_combinations_that_could_never_be_placed_are_refused_when_the_app_is_built(backend, refusal):
    with pytest.raises(ValueError, match=refusal):
        AppArgs.model_validate({"backends": {"deepseek-ocr": backend}, "allow_custom_engines": True})


def test_explicit_bundles_are_kept():
    explicit = {
        **tp_backend(2),
        "deployment": {
            "placement_group_bundles": [{"CPU": 2, "GPU": 1}, {"GPU": 1}, {"CPU": 1}],
            "placement_group_strategy": "PACK",
            "ray_actor_options": {"num_cpus": 2},
        },
    }
    options = BackendConfig.model_validate(explicit).deployment_options()
    assert options.placement_group_bundles == [{"CPU": 2, "GPU": 1}, {"GPU": 1}, {"CPU": 1}]
    assert options.placement_group_strategy == "PACK"


def _cluster_with_tensor_parallel(size: int) -> dict:
    config = yaml.safe_load(CLUSTER.read_text())
    deepseek = config["applications"][0]["args"]["backends"]["deepseek-ocr"]
    deepseek["engine_config"]["tensor_parallel_size"] = size
    deepseek["deployment"]["ray_actor_options"]["num_gpus"] = 0
    return config


def test_the_local_gpu_check_counts_every_gpu_of_a_tensor_parallel_replica(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(_cluster_with_tensor_parallel(2)))
    assert required_gpus(load_config(path)) == required_gpus(load_config(CLUSTER)) + 1  # 2 instead of 1


def test_kuberay_placement_check_wants_the_gpus_of_a_replica_on_one_pod():
    layout = kuberay.load_layout(kuberay.DEFAULT_LAYOUT)  # deepseek-gpu pods have one GPU each
    problems = kuberay.placement_problems(_cluster_with_tensor_parallel(2), layout)
    assert any("deepseek-ocr" in p and "'GPU': 2.0" in p for p in problems), problems
    workers = [w.model_copy(update={"gpus": 2}) if w.name == "deepseek-gpu" else w for w in layout.workers]
    roomy = layout.model_copy(update={"workers": workers})
    assert not any("deepseek-ocr" in p for p in kuberay.placement_problems(_cluster_with_tensor_parallel(2), roomy))


def test_deployment_options_alone_validate_like_serve():
    assert DeploymentOptions(placement_group_bundles=[{"CPU": 1, "GPU": 1}]).resources() == {"CPU": 1.0, "GPU": 1.0}
    with pytest.raises(ValueError, match="non-empty"):
        DeploymentOptions(placement_group_bundles=[{}])
