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


SHIPPED = [*CONFIGS, *sorted((REPO_CONFIG.parent / "deploy" / "kubernetes").glob("*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_no_shipped_config_deploys_test_only_power(path: Path):
    """Profiles, serve_config.yaml and the KubeRay manifests (which embed it): no custom engines, no test engine,
    no random weights - not even switched off."""
    text = path.read_text()
    assert "tests." not in text and "FakeEngine" not in text and FAKE not in text
    for words in ("allow_custom_engines", "allow_random_weights", "load_format: dummy", "load_format: 'dummy'"):
        assert words not in text, (path.name, words)


def test_custom_engines_need_the_apps_explicit_permission():
    with pytest.raises(ValueError, match="allow_custom_engines: true"):
        AppArgs.model_validate({"backends": {"f": {"engine": FAKE}}})
    # refused before anything is imported: a module that cannot even be imported gets the same answer
    with pytest.raises(ValueError, match="allow_custom_engines: true"):
        AppArgs.model_validate({"backends": {"x": {"engine": "no_such_package.anywhere:Engine"}}})
    with pytest.raises(ValueError, match="allow_custom_engines: true"):
        AppArgs.model_validate({"backends": {"f": {"engine": FAKE}}, "allow_custom_engines": False})
    allowed = AppArgs.model_validate({"backends": {"f": {"engine": FAKE}}, "allow_custom_engines": True})
    assert allowed.enabled_backends()["f"].engine == FAKE
    assert AppArgs.model_validate({"backends": {"f": {"engine": FAKE}}, "allow_custom_engines": "true"})
    with pytest.raises(ValueError, match="no engine kind 'tesseract'"):  # a typo is named as one
        AppArgs.model_validate({"backends": {"t": {"engine": "tesseract"}}})
    assert not AppArgs().allow_custom_engines  # the default app: off


def test_random_weights_need_their_own_permission(tmp_path):
    from backends.deepseek.config import DeepSeekConfig

    with pytest.raises(ValueError, match="allow_random_weights: true"):
        AppArgs.model_validate({"backends": {"d": {"engine": "deepseek", "engine_config": {"load_format": "dummy"}}}})
    with pytest.raises(ValueError, match="every answer is noise"):
        DeepSeekConfig(load_format="dummy")
    cfg = DeepSeekConfig(load_format="dummy", allow_random_weights=True)
    assert cfg.random_weights() and not DeepSeekConfig().random_weights()
    assert not DeepSeekConfig(allow_random_weights=True).random_weights()  # the permission alone changes nothing


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
        AppArgs.model_validate({"backends": {"router": {"engine": "rapidocr"}}})


def test_autoscaling_replaces_fixed_replica_count():
    opts = DeploymentOptions(num_replicas=3, autoscaling_config={"min_replicas": 1, "max_replicas": 4})
    assert "num_replicas" not in opts.to_serve_options()
    assert DeploymentOptions().to_serve_options() == {"num_replicas": 1}


def test_misspelt_autoscaling_keys_are_refused():
    with pytest.raises(Exception, match="min_replica"):
        DeploymentOptions(autoscaling_config={"min_replica": 2, "max_replicas": 4})
