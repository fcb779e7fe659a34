from __future__ import annotations

import re
from pathlib import Path

import pytest

from takt_mcp.identity import (
    IdentityError,
    IdentityRegistry,
    UnknownIdentityError,
    builtin_identity_dir,
    parse_identity,
)

BODY = (
    "This text describes Probe. Probe checks the key premise first and\n"
    "changes its mind on evidence, never on pressure alone."
)


def block_source(
    name: str = "probe",
    version: str = "1.0.0",
    description: str = "A test voice.",
    body: str = BODY,
) -> str:
    return (
        f'+++\nname = "{name}"\nversion = "{version}"\ndescription = "{description}"\n+++\n{body}\n'
    )


def write_block(folder: Path, file_name: str, source: str) -> Path:
    path = folder / file_name
    path.write_text(source, encoding="utf-8")
    return path


# --- the shipped block ---


def test_builtin_folder_contains_takt() -> None:
    assert (builtin_identity_dir() / "takt.md").is_file()


def test_shipped_takt_block_loads(identities: IdentityRegistry) -> None:
    block = identities.get("takt")

    assert block.name == "takt"
    assert block.version
    assert block.description
    assert block.voice == "Takt"
    assert "Takt" in block.text


def test_shipped_block_text_excludes_front_matter(identities: IdentityRegistry) -> None:
    text = identities.get("takt").text

    assert "+++" not in text
    assert "version =" not in text


def test_shipped_block_hash_is_sha256_hex(identities: IdentityRegistry) -> None:
    block = identities.get("takt")

    assert re.fullmatch(r"[0-9a-f]{64}", block.sha256)
    assert block.short_hash == block.sha256[:12]


def test_default_registry_lists_takt(identities: IdentityRegistry) -> None:
    assert "takt" in identities.names()
    assert [block.name for block in identities.blocks()] == identities.names()


# --- parsing and hashing ---


def test_parse_reads_metadata_and_text(tmp_path: Path) -> None:
    block = parse_identity(block_source(), tmp_path / "probe.md")

    assert block.name == "probe"
    assert block.version == "1.0.0"
    assert block.description == "A test voice."
    assert block.text == BODY
    assert block.path == tmp_path / "probe.md"


def test_voice_defaults_to_capitalized_name(tmp_path: Path) -> None:
    block = parse_identity(block_source(), tmp_path / "probe.md")

    assert block.voice == "Probe"


def test_voice_comes_from_front_matter(tmp_path: Path) -> None:
    source = block_source().replace("+++\nname", '+++\nvoice = "Dr Probe"\nname', 1)

    assert parse_identity(source, tmp_path / "probe.md").voice == "Dr Probe"


def test_hash_is_stable(tmp_path: Path) -> None:
    first = parse_identity(block_source(), tmp_path / "probe.md")
    second = parse_identity(block_source(), tmp_path / "elsewhere" / "probe.md")

    assert first.sha256 == second.sha256


@pytest.mark.parametrize(
    "changed",
    [
        {"body": BODY + " One more sentence."},
        {"body": BODY.replace("Probe checks", "Probe tests")},
        {"version": "1.0.1"},
    ],
)
def test_hash_changes_with_text_or_version(tmp_path: Path, changed: dict[str, str]) -> None:
    original = parse_identity(block_source(), tmp_path / "probe.md")
    edited = parse_identity(block_source(**changed), tmp_path / "probe.md")

    assert edited.sha256 != original.sha256


def test_windows_line_endings_parse(tmp_path: Path) -> None:
    source = block_source().replace("\n", "\r\n")

    block = parse_identity(source, tmp_path / "probe.md")

    assert block.name == "probe"
    assert block.sha256 == parse_identity(block_source(), tmp_path / "probe.md").sha256


# --- malformed files ---

MALFORMED = [
    pytest.param(BODY, 1, id="no front matter"),
    pytest.param("", 1, id="empty file"),
    pytest.param('+++\nname = "probe"\nversion = "1"\n' + BODY, 1, id="unclosed front matter"),
    pytest.param(
        '+++\nname = probe\nversion = "1"\ndescription = "d"\n+++\n' + BODY,
        2,
        id="invalid TOML",
    ),
    pytest.param('+++\nname = "probe"\nversion = "1"\n+++\n' + BODY, 2, id="missing description"),
    pytest.param(block_source(name="Probe Voice"), 2, id="name with capitals and space"),
    pytest.param(block_source(name="-probe"), 2, id="name with leading dash"),
    pytest.param(block_source(version=""), 2, id="empty version"),
    pytest.param(
        block_source().replace("+++\nname", '+++\ncolor = "red"\nname', 1), 2, id="unknown key"
    ),
    pytest.param(block_source(body=""), 6, id="empty body"),
    pytest.param(block_source(body="Too short."), 6, id="short body"),
]


@pytest.mark.parametrize(("source", "line"), MALFORMED)
def test_malformed_block_names_file_and_line(tmp_path: Path, source: str, line: int) -> None:
    path = tmp_path / "probe.md"

    with pytest.raises(IdentityError) as caught:
        parse_identity(source, path)

    assert str(caught.value).startswith(f"{path}:{line}:")


def test_invalid_toml_reports_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "probe.md"
    # The bad value is on line 3 of the file.
    source = '+++\nname = "probe"\nversion = 1.0.0\ndescription = "d"\n+++\n' + BODY

    with pytest.raises(IdentityError) as caught:
        parse_identity(source, path)

    assert str(caught.value).startswith(f"{path}:3:")


def test_toml_error_at_end_reports_last_line(tmp_path: Path) -> None:
    path = tmp_path / "probe.md"
    # The value is missing on line 4 of the file, the last line of the front matter.
    source = '+++\nname = "probe"\nversion = "1"\ndescription = \n+++\n' + BODY

    with pytest.raises(IdentityError) as caught:
        parse_identity(source, path)

    assert str(caught.value).startswith(f"{path}:4:")


def test_block_with_byte_order_mark_loads(tmp_path: Path) -> None:
    (tmp_path / "probe.md").write_text("\ufeff" + block_source(), encoding="utf-8")

    assert IdentityRegistry.load(tmp_path).get("probe").name == "probe"


def test_missing_field_is_named(tmp_path: Path) -> None:
    source = '+++\nname = "probe"\nversion = "1"\n+++\n' + BODY

    with pytest.raises(IdentityError, match="description"):
        parse_identity(source, tmp_path / "probe.md")


def test_name_must_match_file_name(tmp_path: Path) -> None:
    path = write_block(tmp_path, "other.md", block_source(name="probe"))

    with pytest.raises(IdentityError) as caught:
        IdentityRegistry.load(tmp_path)

    message = str(caught.value)
    assert message.startswith(f"{path}:2:")
    assert "probe.md" in message


def test_undecodable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "probe.md"
    path.write_bytes(b"+++\n\xff\xfe\n+++\n")

    with pytest.raises(IdentityError, match=re.escape(str(path))):
        IdentityRegistry.load(tmp_path)


# --- the user folder ---


def test_user_folder_adds_blocks(tmp_path: Path) -> None:
    write_block(tmp_path, "probe.md", block_source())

    registry = IdentityRegistry.load(tmp_path)

    assert registry.names() == ["probe", "takt"]
    assert registry.get("probe").path == tmp_path / "probe.md"


def test_user_folder_overrides_builtin(tmp_path: Path) -> None:
    builtin = IdentityRegistry.load().get("takt")
    write_block(tmp_path, "takt.md", block_source(name="takt", version="9.9.9"))

    block = IdentityRegistry.load(tmp_path).get("takt")

    assert block.version == "9.9.9"
    assert block.sha256 != builtin.sha256


def test_user_folder_ignores_other_suffixes(tmp_path: Path) -> None:
    write_block(tmp_path, "notes.txt", "not an identity block")

    assert IdentityRegistry.load(tmp_path).names() == ["takt"]


def test_broken_user_block_raises(tmp_path: Path) -> None:
    path = write_block(tmp_path, "probe.md", block_source(body=""))

    with pytest.raises(IdentityError, match=re.escape(str(path))):
        IdentityRegistry.load(tmp_path)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_user_folder_must_be_a_folder(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "identities"
    if kind == "file":
        target.write_text("x", encoding="utf-8")

    with pytest.raises(IdentityError, match="TAKT_IDENTITY_DIR"):
        IdentityRegistry.load(target)


def test_unknown_identity_lists_available_names(tmp_path: Path) -> None:
    write_block(tmp_path, "probe.md", block_source())
    registry = IdentityRegistry.load(tmp_path)

    with pytest.raises(UnknownIdentityError) as caught:
        registry.get("nobody")

    assert caught.value.name == "nobody"
    assert caught.value.available == ["probe", "takt"]
    assert "'nobody'" in str(caught.value)
    assert "probe, takt" in str(caught.value)


def test_unknown_identity_is_lookup_error(identities: IdentityRegistry) -> None:
    with pytest.raises(LookupError):
        identities.get("Takt")
