"""serve_config.yaml and the bundled profiles are valid Ray Serve configs with valid builder args."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from benchmarks.support.fake_engine import FAKE
from orchestrator.ops.local import PROFILES_DIR, REPO_CONFIG, load_config, required_gpus
from orchestrator.serving.config import AppArgs, DeploymentOptions

CONFIGS = [REPO_CONFIG, *sorted(PROFILES_DIR.glob("*.yaml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates_against_rays_schema_and_our_args(path: Path):
    raw = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    for app in schema.applications:
        assert app.import_path == "orchestrator.builder:build_app"
        args = AppArgs.model_validate(app.args)
        for name, backend in args.enabled_backends().items():
            from backends.registry import ENGINES

            assert backend.engine in ENGINES, name


def test_production_config_pins_each_gpu_model_to_its_own_gpu():
    args = AppArgs.model_validate(load_config(REPO_CONFIG).applications[0].args)
    backends = args.enabled_backends()
    assert backends["deepseek-ocr"].deployment.ray_actor_options["num_gpus"] == 1
    assert backends["mineru"].deployment.ray_actor_options["num_gpus"] == 1
    assert backends["rapidocr"].deployment.ray_actor_options.get("num_gpus", 0) == 0
    assert required_gpus(load_config(REPO_CONFIG)) >= 2


def test_cpu_profile_needs_no_gpu_and_fits_two_cores():
    cfg = load_config(PROFILES_DIR / "cpu.yaml")
    assert required_gpus(cfg) == 0
    args = AppArgs.model_validate(cfg.applications[0].args)
    cpus = sum(b.deployment.ray_actor_options.get("num_cpus", 1) for b in args.enabled_backends().values())
    cpus += args.router_deployment.ray_actor_options.get("num_cpus", 1)
    assert cpus <= 2
    assert {"rapidocr", "mineru"} <= set(args.enabled_backends())


def test_args_are_strict_and_checked():
    with pytest.raises(Exception, match="extra"):
        AppArgs.model_validate({"backendz": {}})
    with pytest.raises(Exception, match="default_backend"):
        AppArgs.model_validate({"router": {"default_backend": "ghost"}})
    with pytest.raises(Exception, match="reserved"):
        AppArgs.model_validate({"backends": {"router": {"engine": FAKE}}})


def test_autoscaling_replaces_fixed_replica_count():
    opts = DeploymentOptions(num_replicas=3, autoscaling_config={"min_replicas": 1, "max_replicas": 4})
    assert "num_replicas" not in opts.to_serve_options()
    assert DeploymentOptions().to_serve_options() == {"num_replicas": 1}


def test_misspelt_autoscaling_keys_are_refused():
    with pytest.raises(Exception, match="min_replica"):
        DeploymentOptions(autoscaling_config={"min_replica": 2, "max_replicas": 4})
