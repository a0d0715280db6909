"""The KubeRay RayService manifest: generated from serve_config.yaml and the cluster layout, valid for Ray's
Serve schema, read by Ray's own KubeRay autoscaler parser as the layout says, and able to place every
deployment. No cluster needed (~3 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema

from orchestrator.ops import kuberay
from orchestrator.ops.local import PROFILES_DIR, REPO_CONFIG
from orchestrator.serving.config import AppArgs

MANIFEST = kuberay.DEFAULT_OUT
LAYOUT = kuberay.DEFAULT_LAYOUT


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_manifest_is_what_the_generator_makes_of_serve_config_and_layout():
    expected, problems = kuberay.generate(REPO_CONFIG, LAYOUT)
    assert problems == []
    assert MANIFEST.read_text() == expected, "stale manifest: run `python -m orchestrator.ops.kuberay`"
    assert kuberay.main(["--check"]) == 0


def test_serve_config_v2_is_serve_config_and_valid_for_rays_schema(manifest):
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load(REPO_CONFIG.read_text())
    schema = ServeDeploySchema.model_validate(embedded)
    for app in schema.applications:
        assert app.import_path == kuberay.BUILDER
        AppArgs.model_validate(app.args)


def test_cluster_autoscales_with_token_auth_on_the_installed_ray(manifest):
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["rayVersion"] == ray.__version__  # authOptions needs rayVersion >= 2.52.0 in the CR
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert groups["deepseek-gpu"]["rayStartParams"]["num-gpus"] == "1"
    assert groups["mineru-gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_rays_kuberay_autoscaler_reads_the_groups_as_the_layout_says(manifest):
    """The autoscaler derives node types from the CR; if the resources string or labels were malformed, it
    would raise or see no deepseek_gpu, and pinned replicas would never get a node."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    cr = {"metadata": {"name": "ocrserve", "namespace": "default"}, "spec": manifest["spec"]["rayClusterConfig"]}
    seen = _derive_autoscaling_config_from_ray_cr(cr)["available_node_types"]
    want = kuberay.node_types(kuberay.load_layout(LAYOUT))
    for group, node in want.items():
        if group == "head":
            assert seen["headgroup"]["resources"]["CPU"] == 0
            continue
        got = seen[group]
        assert {k: v for k, v in got["resources"].items() if k != "memory"} == {
            k: v for k, v in node["resources"].items() if v
        }
        assert got.get("labels", {}) == node["labels"]
        assert got["max_workers"] == node["max_replicas"]
    assert seen["deepseek-gpu"]["resources"]["deepseek_gpu"] == 1
    assert seen["mineru-gpu"]["labels"] == {"ocrserve.io/gpu-pool": "mineru"}


@pytest.mark.parametrize("config", [REPO_CONFIG, PROFILES_DIR / "gpu-cluster.yaml"], ids=lambda p: p.name)
def test_every_deployment_fits_the_layout(config: Path):
    assert kuberay.placement_problems(yaml.safe_load(config.read_text()), kuberay.load_layout(LAYOUT)) == []


def _with(config: dict, backend: str, **actor_options) -> dict:
    args = config["applications"][0]["args"]
    args["backends"][backend]["deployment"]["ray_actor_options"].update(actor_options)
    return config


def test_placement_check_refuses_pins_no_group_advertises():
    layout = kuberay.load_layout(LAYOUT)
    base = lambda: yaml.safe_load((PROFILES_DIR / "gpu-cluster.yaml").read_text())  # noqa: E731
    bad_resource = _with(base(), "deepseek-ocr", resources={"h200_gpu": 1})
    assert any("deepseek-ocr" in p for p in kuberay.placement_problems(bad_resource, layout))
    bad_label = _with(base(), "mineru", label_selector={"ocrserve.io/gpu-pool": "nowhere"})
    assert any("mineru" in p for p in kuberay.placement_problems(bad_label, layout))
    too_big = _with(base(), "mineru", num_gpus=2)
    assert any("mineru" in p for p in kuberay.placement_problems(too_big, layout))
    too_many = base()
    too_many["applications"][0]["deployments"] = [
        {"name": "deepseek-ocr", "autoscaling_config": {"min_replicas": 1, "max_replicas": 100}}
    ]
    assert any("max_replicas 100" in p for p in kuberay.placement_problems(too_many, layout))


def test_label_selector_operators():
    match = kuberay._label_matches
    assert match("mineru", "mineru") and not match("deepseek", "mineru")
    assert match("a", "in(a, b)") and not match("c", "in(a,b)")
    assert match("c", "!in(a,b)") and not match(None, "mineru") and match(None, "!mineru")


def test_rayservice_resources_param_round_trips_through_rays_parser():
    from ray.autoscaler._private.kuberay.autoscaling_config import _get_custom_resources

    group = kuberay.WorkerGroup(
        name="g", min_replicas=0, max_replicas=1, cpu=1, memory="1Gi", ray_resources={"a_gpu": 2, "b": 1}
    )
    params = kuberay.ray_start_params(group)
    assert _get_custom_resources({}, params, "g") == {"a_gpu": 2, "b": 1}
