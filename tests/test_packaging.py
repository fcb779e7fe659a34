"""Release metadata: versions, server.json for the MCP registry, the README, the wheel."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
import typing
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr

import takt_mcp
from takt_mcp.config import (
    DEFAULT_ANTHROPIC_MODEL,
    DEFAULT_OPENAI_MODEL,
    ENVIRONMENT_VARIABLES,
    Settings,
    load_settings,
)
from takt_mcp.identity import IdentityRegistry
from takt_mcp.server import build_server

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
# The registry rejects longer descriptions.
MAX_DESCRIPTION_CHARS = 100
# Reverse-DNS namespace, one slash, then the server's own name.
REGISTRY_NAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+/[a-zA-Z0-9._-]+$")
MCP_NAME_MARKER = re.compile(r"<!--\s*mcp-name:\s*(\S+)\s*-->")
CONFIG_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|")
BACKTICKED = re.compile(r"`([^`]+)`")
# Keys the 2025-12-11 schema allows in a package (it forbids any other) and in
# an environment variable entry.
PACKAGE_KEYS = {
    "registryType",
    "registryBaseUrl",
    "identifier",
    "version",
    "fileSha256",
    "runtimeHint",
    "transport",
    "runtimeArguments",
    "packageArguments",
    "environmentVariables",
}
VARIABLE_KEYS = {
    "name",
    "description",
    "isRequired",
    "isSecret",
    "format",
    "value",
    "default",
    "placeholder",
    "choices",
    "variables",
}
VARIABLE_FORMATS = {"string", "number", "boolean", "filepath"}


def load_server_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return data


def load_pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def read_readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def pypi_package(server: dict[str, Any]) -> dict[str, Any]:
    packages = [p for p in server["packages"] if p["registryType"] == "pypi"]
    assert len(packages) == 1
    package: dict[str, Any] = packages[0]
    return package


def readme_configuration_table() -> dict[str, str]:
    """Return variable name -> default cell of the README's configuration table."""
    section = read_readme().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = CONFIG_ROW.match(line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def is_secret_field(field: str) -> bool:
    annotation = Settings.model_fields[field].annotation
    return SecretStr in typing.get_args(annotation) or annotation is SecretStr


def fields_with_defaults() -> dict[str, str]:
    """Return variable -> field for every setting whose default is not None."""
    return {
        variable: field
        for variable, field in ENVIRONMENT_VARIABLES.items()
        if Settings.model_fields[field].default is not None
    }


# --- versions -------------------------------------------------------------------


def test_versions_agree_across_metadata() -> None:
    server = load_server_json()
    project_version = load_pyproject()["project"]["version"]

    assert server["version"] == project_version
    assert pypi_package(server)["version"] == project_version
    assert takt_mcp.__version__ == project_version


def isolated_settings(data_dir: Path) -> Settings:
    """Return default settings whose ledger and cache live under `data_dir`."""
    return load_settings({"TAKT_DATA_DIR": str(data_dir)})


def test_server_reports_project_version(tmp_path: Path) -> None:
    server = build_server(isolated_settings(tmp_path), IdentityRegistry.load())

    assert server.version == load_pyproject()["project"]["version"]


@pytest.mark.anyio
async def test_client_sees_project_version(tmp_path: Path) -> None:
    server = build_server(isolated_settings(tmp_path), IdentityRegistry.load())

    async with Client(server) as client:
        info = client.server_info

    assert info is not None
    assert info.version == load_pyproject()["project"]["version"]


# --- server.json ------------------------------------------------------------------


def test_server_json_names_schema() -> None:
    assert load_server_json()["$schema"] == SCHEMA_URL


def test_server_json_description_fits_registry() -> None:
    description = load_server_json()["description"]

    assert 0 < len(description) <= MAX_DESCRIPTION_CHARS


def test_server_json_name_is_reverse_dns() -> None:
    assert REGISTRY_NAME.match(load_server_json()["name"])


def test_readme_marker_matches_server_name() -> None:
    markers = MCP_NAME_MARKER.findall(read_readme())

    assert markers == [load_server_json()["name"]]


def test_repository_matches_project_homepage() -> None:
    repository = load_server_json()["repository"]

    assert repository["source"] == "github"
    assert repository["url"] == load_pyproject()["project"]["urls"]["Homepage"]


def test_pypi_package_runs_over_stdio() -> None:
    package = pypi_package(load_server_json())

    assert package["identifier"] == load_pyproject()["project"]["name"]
    assert package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}


def test_package_uses_only_schema_keys() -> None:
    package = pypi_package(load_server_json())

    assert set(package) <= PACKAGE_KEYS


def test_variable_entries_use_schema_keys() -> None:
    for entry in pypi_package(load_server_json())["environmentVariables"]:
        assert set(entry) <= VARIABLE_KEYS, entry["name"]
        assert {"name", "description", "isRequired", "isSecret"} <= set(entry), entry["name"]
        assert entry.get("format", "string") in VARIABLE_FORMATS, entry["name"]
        assert entry["description"], entry["name"]


def test_server_json_lists_every_variable() -> None:
    entries = pypi_package(load_server_json())["environmentVariables"]
    names = [entry["name"] for entry in entries]

    assert sorted(names) == sorted(ENVIRONMENT_VARIABLES)
    assert len(names) == len(set(names))


def test_only_keys_are_secret() -> None:
    entries = pypi_package(load_server_json())["environmentVariables"]
    secret = {entry["name"] for entry in entries if entry["isSecret"]}
    expected = {v for v, field in ENVIRONMENT_VARIABLES.items() if is_secret_field(field)}

    assert expected == {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "TAKT_HTTP_TOKEN"}
    assert secret == expected


def test_server_json_defaults_match_settings() -> None:
    entries = pypi_package(load_server_json())["environmentVariables"]
    defaults = {entry["name"]: entry.get("default") for entry in entries}
    settings = load_settings({})

    for variable, field in fields_with_defaults().items():
        assert defaults[variable] is not None, variable
        parsed = load_settings({variable: defaults[variable]})
        assert getattr(parsed, field) == getattr(settings, field), variable


def test_server_json_choices_are_valid() -> None:
    for entry in pypi_package(load_server_json())["environmentVariables"]:
        field = ENVIRONMENT_VARIABLES[entry["name"]]
        for choice in entry.get("choices", []):
            assert getattr(load_settings({entry["name"]: choice}), field) == choice


# --- README ------------------------------------------------------------------------


def test_readme_starts_with_title() -> None:
    assert read_readme().splitlines()[0] == "# takt-mcp"


def test_readme_table_lists_every_variable() -> None:
    rows = list(readme_configuration_table())

    assert sorted(rows) == sorted(ENVIRONMENT_VARIABLES)
    assert len(rows) == len(set(rows))


def test_readme_defaults_match_settings() -> None:
    table = readme_configuration_table()
    settings = load_settings({})

    for variable, field in fields_with_defaults().items():
        values = BACKTICKED.findall(table[variable])
        assert values, f"{variable} has no `default` in the README table"
        parsed = load_settings({variable: values[0]})
        assert getattr(parsed, field) == getattr(settings, field), variable


def test_readme_names_default_models() -> None:
    readme = read_readme()

    for model in (DEFAULT_ANTHROPIC_MODEL, DEFAULT_OPENAI_MODEL):
        assert f"`{model}`" in readme, model


def test_readme_has_test_command() -> None:
    assert ".venv/bin/python -m pytest" in read_readme()


# --- the wheel -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the project's wheel once for this module."""
    output = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(output)]
    # With hatchling installed the build needs no download. Without it, pip
    # fetches the build backend into an isolated environment.
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")
    completed = subprocess.run(
        [*command, str(ROOT)], capture_output=True, text=True, timeout=600, check=False
    )
    if completed.returncode != 0:
        log = completed.stdout + completed.stderr
        if "hatchling" in log and "No matching distribution" in log:
            pytest.skip("the build backend hatchling is not installed and cannot be downloaded")
        pytest.fail(f"building the wheel failed:\n{log}")
    wheels = list(output.glob("takt_mcp-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_identities(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert "takt_mcp/identities/takt.md" in names


def test_wheel_identity_matches_source(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packaged_block = archive.read("takt_mcp/identities/takt.md")

    assert packaged_block == (ROOT / "identities" / "takt.md").read_bytes()


def test_wheel_contains_type_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert "takt_mcp/py.typed" in names


def test_wheel_version_matches_project(wheel: Path) -> None:
    version = load_pyproject()["project"]["version"]

    assert wheel.name.startswith(f"takt_mcp-{version}-")


def test_wheel_declares_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(
            archive.read(name).decode()
            for name in archive.namelist()
            if name.endswith(".dist-info/entry_points.txt")
        )

    assert "takt-mcp = takt_mcp.cli:main" in entry_points
