"""The shape of the code: layers one way, no torch in the API process at import, one error table."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import REPO

from models import errors as model_errors
from models.errors import PatchDropError
from service import errors as service_errors
from service.errors import STATUS_BY_CODE
from service.settings import Settings
from worker import errors as worker_errors


def test_importing_and_building_the_api_loads_no_torch(tmp_path):
    code = f"""
import sys
import service.app, service.routes.plans, service.executor, service.store, service.stac
import worker.app, worker.settings, worker.payloads, worker.errors
from service.app import create_app
from service.settings import Settings
create_app(Settings(db_path={str(tmp_path / "x.sqlite3")!r}, preload_models=False))
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, loaded[:5]
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_api_imports_matplotlib_at_start_up_not_in_a_request_thread():
    """Its import parses settings with ``ast``, which CPython 3.11 cannot do in two threads at once (gh-106905)."""
    code = "import sys, service.app; assert 'matplotlib.figure' in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


TORCH_FREE = ("models.geo", "models.acquisition", "models.errors", "models.assets")


def test_the_torch_free_packages_import_without_torch():
    code = f"""
import importlib, pkgutil, sys
for name in {TORCH_FREE!r}:
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        importlib.import_module(name + "." + info.name)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, loaded[:5]
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _models_imports(package: str) -> dict[str, set[str]]:
    """Per file of ``package``, the ``models`` packages it imports, at any level (``models.geo``, ``models.nn``...)."""
    out = {}
    for path in (REPO / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [node.module] if node.module != "models" else [f"models.{a.name}" for a in node.names]
            names |= {".".join(m.split(".")[:2]) for m in modules if m.startswith("models.")}
        out[str(path.relative_to(REPO))] = names
    return out


@pytest.mark.parametrize(
    "package, allowed",
    [
        # The API process plans nothing itself: geometry, prices and errors only.
        ("service", set(TORCH_FREE)),
        # Workers run the networks, never the training code.
        ("worker", {*TORCH_FREE, "models.nn"}),
        ("models/geo", {"models.geo", "models.errors"}),
        ("models/acquisition", {"models.geo", "models.acquisition", "models.errors"}),
        ("models/nn", {"models.geo", "models.acquisition", "models.nn", "models.errors", "models.assets"}),
    ],
)
def test_each_layer_imports_only_the_models_packages_it_may(package, allowed):
    offenders = {path: names - allowed for path, names in _models_imports(package).items() if names - allowed}
    assert not offenders


def test_only_the_geo_package_imports_rasterio():
    users = {
        path
        for package in ("models", "service", "worker", "patchdrop")
        for path, names in _imports(package).items()
        if "rasterio" in names
    }
    assert users and all(path.startswith("models/geo/") for path in users), sorted(users)


def _imports(package: str) -> dict[str, set[str]]:
    out = {}
    for path in (REPO / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("models", {"fastapi", "starlette", "celery", "kombu", "service", "worker", "patchdrop"}),
        ("worker", {"fastapi", "starlette", "service", "patchdrop"}),
        ("service", {"patchdrop"}),
    ],
)
def test_layers_point_one_way(package, forbidden):
    offenders = {path: names & forbidden for path, names in _imports(package).items() if names & forbidden}
    assert not offenders


def test_service_modules_import_torch_only_lazily():
    for path in Path(REPO / "service").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top_level if isinstance(n, ast.Import) for a in n.names}
        modules = {n.module for n in top_level if isinstance(n, ast.ImportFrom) and n.module}
        heavy = {"torch", "worker.jobs", "worker.registry", "models.nn.inference", "models.nn.checkpoint"}
        assert not (names | modules) & heavy, path


def _all_errors() -> set[type[PatchDropError]]:
    """Every PatchDropError subclass defined anywhere in models/, worker/ and service/."""
    import importlib
    import pkgutil

    import models
    import service
    import worker

    for package in (models, worker, service):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    found, todo = set(), [PatchDropError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_error_the_api_can_raise_has_a_status():
    training_only = {"dataset_not_found", "invalid_dataset"}
    codes = {error.code for error in _all_errors()} - training_only
    unmapped = {c for c in codes if c not in STATUS_BY_CODE}
    assert not unmapped
    assert "patchdrop_error" not in codes, [e for e in _all_errors() if e.code == "patchdrop_error"]
    request_errors = {
        "invalid_raster", "wrong_band_count", "wrong_bands", "empty_raster", "tile_too_large",
        "upload_too_large", "hr_not_covering", "invalid_budget", "unknown_model", "plan_not_found",
        "job_not_found", "invalid_request", "missing_upload",
    }  # fmt: skip
    assert all(400 <= STATUS_BY_CODE[c] < 500 for c in request_errors)


def test_error_constructors_take_only_a_message():
    for module in (model_errors, worker_errors, service_errors):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, PatchDropError):
                err = obj("message")
                assert err.message == "message" and err.args == ("message",)


def test_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("PATCHDROP_PRICING__PRICE_PER_KM2", "25.5")
    monkeypatch.setenv("PATCHDROP_MODELS", '{"a": "/m/a.pt", "default": "/m/d.pt"}')
    monkeypatch.setenv("PATCHDROP_MAX_UPLOAD_BYTES", "1000")
    settings = Settings()
    assert settings.mode == "celery" and settings.redis_url == "redis://example:6379/3"
    assert settings.pricing.price_per_km2 == 25.5 and settings.pricing.min_area_km2 == 1.0
    assert settings.models["a"] == Path("/m/a.pt") and settings.max_upload_bytes == 1000
    monkeypatch.delenv("REDIS_URL")
    assert Settings().mode == "embedded"


def test_unsafe_settings_are_refused():
    with pytest.raises(ValueError, match="price_per_km2"):
        Settings(pricing={"price_per_km2": -1})
    with pytest.raises(ValueError, match="default_model"):
        Settings(models={"a": "/m/a.pt"}, default_model="b")


def test_celery_is_json_only():
    from worker.app import create_celery
    from worker.settings import WorkerSettings

    app = create_celery(WorkerSettings(redis_url="redis://127.0.0.1:1/0"))
    assert app.conf.task_serializer == "json" and app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"] and list(app.conf.result_accept_content) == ["json"]
    with pytest.raises(ValueError, match="REDIS_URL"):
        create_celery(WorkerSettings(redis_url=None))
