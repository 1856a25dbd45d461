"""docker-compose.yml and deploy/*.Dockerfile, checked by parsing (no Docker engine in CI).

The containers must start the real entry points: the ``patchdrop`` console script's
``serve`` and ``worker`` subcommands, which exec uvicorn on ``service.app:create_app`` and
a solo-pool ``celery -A worker.app`` worker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from patchdrop.cli import build_parser, serve_command, worker_command

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = {
    "api": REPO / "deploy" / "api.Dockerfile",
    "worker": REPO / "deploy" / "worker.Dockerfile",
    "worker-gpu": REPO / "deploy" / "worker-gpu.Dockerfile",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def cmd_of(path: Path) -> list[str]:
    return json.loads([rest for kw, rest in dockerfile_instructions(path) if kw == "CMD"][-1])


def test_compose_has_redis_api_worker_and_a_gpu_profile(services):
    assert {"redis", "api", "worker", "worker-gpu"} <= set(services)
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert all("profiles" not in services[name] for name in ("redis", "api", "worker"))


def test_every_service_has_a_health_check(services):
    for name, service in services.items():
        assert service["healthcheck"]["test"], name


def test_redis_persists_to_a_volume(compose, services):
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.startswith("redis-data:") for v in services["redis"]["volumes"])
    assert "redis-data" in compose["volumes"]


def test_redis_is_not_published(services):
    assert "ports" not in services["redis"]


def test_checkpoints_are_mounted_into_api_and_workers(services):
    for name in ("api", "worker", "worker-gpu"):
        assert "./checkpoints:/checkpoints:ro" in services[name]["volumes"], name


@pytest.mark.parametrize("name", ["api", "worker", "worker-gpu"])
def test_services_run_in_production_with_api_keys_and_redis(services, name):
    env = services[name]["environment"]
    assert env["PATCHDROP_ENVIRONMENT"] == "production"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["PATCHDROP_API_KEYS"].startswith("${PATCHDROP_API_KEYS:?")  # compose refuses to start without


@pytest.mark.parametrize("name", ["api", "worker", "worker-gpu"])
def test_compose_command_is_the_dockerfile_command(services, name):
    assert services[name]["command"] == cmd_of(DOCKERFILES[name])
    assert services[name]["build"]["dockerfile"] == str(DOCKERFILES[name].relative_to(REPO))


def pyproject() -> str:
    # Read as text: tomllib is 3.11+, the project supports 3.10.
    return (REPO / "pyproject.toml").read_text()


def test_patchdrop_is_the_installed_console_script():
    assert re.search(r'^patchdrop = "patchdrop\.cli:main"$', pyproject(), re.M)


def test_api_command_starts_uvicorn_on_the_app_factory(services):
    args = build_parser().parse_args(services["api"]["command"][1:])
    argv, _ = serve_command(args)
    assert argv[1:5] == ["-m", "uvicorn", "--factory", "service.app:create_app"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "8000"


@pytest.mark.parametrize("name, device", [("worker", "cpu"), ("worker-gpu", "cuda:0")])
def test_worker_command_starts_one_solo_celery_worker(services, name, device):
    args = build_parser().parse_args(services[name]["command"][1:])
    argv, env = worker_command(args)
    assert argv[1:6] == ["-m", "celery", "-A", "worker.app", "worker"] and "--pool=solo" in argv
    assert env["PATCHDROP_DEVICE"] == device
    node = argv[argv.index("-n") + 1].replace("%h", "$HOSTNAME")
    assert node in " ".join(services[name]["healthcheck"]["test"]).replace("$$", "$")


def test_gpu_worker_reserves_one_nvidia_gpu(services):
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["device_ids"] == ["0"] and "gpu" in device["capabilities"]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_copies_only_what_exists(name):
    for keyword, rest in dockerfile_instructions(DOCKERFILES[name]):
        if keyword == "COPY":
            *sources, _ = rest.split()
            assert all((REPO / s).exists() for s in sources), rest


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_installs_the_pinned_torch_and_runs_unprivileged(name):
    pinned = re.search(r'"(torch==[^"]+)"', pyproject()).group(1)
    steps = dockerfile_instructions(DOCKERFILES[name])
    torch_install = next(rest for kw, rest in steps if kw == "RUN" and "torch==" in rest)
    assert pinned in torch_install
    assert ("whl/cpu" in torch_install) == (name != "worker-gpu")
    assert any(kw == "USER" and rest != "root" for kw, rest in steps)


def _compose_env(services, monkeypatch, **overrides) -> None:
    for name in ("REDIS_URL", "PATCHDROP_REDIS_URL", "PATCHDROP_API_KEYS", "PATCHDROP_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**services["api"]["environment"], **overrides}.items():
        if value is not None:
            monkeypatch.setenv(name, value)


def test_the_compose_environment_is_a_valid_production_configuration(services, monkeypatch):
    from service.security import hash_key, new_key
    from service.settings import Settings

    _compose_env(services, monkeypatch, PATCHDROP_API_KEYS=json.dumps({"acme": hash_key(new_key())}))
    settings = Settings()
    assert settings.environment == "production" and settings.mode == "celery" and list(settings.api_keys) == ["acme"]


def test_the_compose_environment_without_keys_is_refused(services, monkeypatch):
    from service.settings import Settings

    _compose_env(services, monkeypatch, PATCHDROP_API_KEYS=None)
    with pytest.raises(ValueError, match="production needs API keys"):
        Settings()
