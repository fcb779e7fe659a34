"""Load, validate and hash identity blocks.

An identity block is a Markdown file that opens with TOML front matter
between two `+++` lines (name, version, description) followed by the prose
that is sent to the model as the first system text.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

FRONT_MATTER_FENCE = "+++"
IDENTITY_SUFFIX = ".md"
# A block shorter than this cannot describe a character; it is almost
# certainly a truncated or placeholder file.
MIN_BLOCK_CHARS = 40


class IdentityError(Exception):
    """An identity block file is malformed; the message names the file and line."""


class UnknownIdentityError(LookupError):
    """No identity block has the requested name."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        super().__init__(
            f"Unknown identity {name!r}. Available identities: {', '.join(available)}. "
            "Pass one of these names, or add a block to TAKT_IDENTITY_DIR."
        )


class IdentityMetadata(BaseModel):
    """Front matter of an identity block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    version: str = Field(min_length=1, max_length=32)
    description: str = Field(min_length=1, max_length=200)
    voice: str | None = Field(
        None, min_length=1, max_length=40, description="Display name; defaults to the name."
    )


@dataclass(frozen=True)
class IdentityBlock:
    """A validated identity block and where it came from."""

    name: str
    version: str
    description: str
    voice: str
    text: str
    sha256: str
    path: Path

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def parse_identity(source: str, path: Path) -> IdentityBlock:
    """Parse one identity block file, raising IdentityError naming file and line."""
    lines = source.splitlines()
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise IdentityError(
            f"{path}:1: an identity block must start with a '{FRONT_MATTER_FENCE}' line "
            "opening its TOML front matter (name, version, description)."
        )
    closing = next(
        (index for index in range(1, len(lines)) if lines[index].strip() == FRONT_MATTER_FENCE),
        None,
    )
    if closing is None:
        raise IdentityError(
            f"{path}:1: the front matter opened here is never closed; "
            f"add a '{FRONT_MATTER_FENCE}' line after the metadata."
        )

    metadata = _parse_front_matter("\n".join(lines[1:closing]), path, closing - 1)
    text = "\n".join(lines[closing + 1 :]).strip()
    if len(text) < MIN_BLOCK_CHARS:
        raise IdentityError(
            f"{path}:{closing + 2}: the identity block text is empty or shorter than "
            f"{MIN_BLOCK_CHARS} characters; write the block below the front matter."
        )

    # The hash covers metadata and text, so a version bump alone also changes it.
    digest = hashlib.sha256(f"{metadata.name}\n{metadata.version}\n{text}".encode()).hexdigest()
    return IdentityBlock(
        name=metadata.name,
        version=metadata.version,
        description=metadata.description,
        voice=metadata.voice or metadata.name.capitalize(),
        text=text,
        sha256=digest,
        path=path,
    )


def _parse_front_matter(toml_text: str, path: Path, line_count: int) -> IdentityMetadata:
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as error:
        # tomllib counts lines from the start of the front matter; the file
        # has the opening fence on line 1 before it. Python 3.14 added lineno;
        # older versions give the line only in the message.
        line = _toml_error_line(error, line_count) + 1
        raise IdentityError(f"{path}:{line}: invalid TOML front matter: {error}") from None
    try:
        return IdentityMetadata.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'front matter'}: {item['msg']}"
            for item in error.errors()
        )
        raise IdentityError(
            f"{path}:2: invalid identity metadata ({problems}). "
            "Expected name (lowercase letters, digits, - or _), version and description."
        ) from None


def _toml_error_line(error: tomllib.TOMLDecodeError, line_count: int) -> int:
    lineno = getattr(error, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = re.search(r"at line (\d+)", str(error))
    if match:
        return int(match.group(1))
    # "at end of document": the problem is on the last front-matter line.
    return max(line_count, 1)


def builtin_identity_dir() -> Path:
    """Return the folder of the identity blocks shipped with the package."""
    packaged = Path(str(resources.files("takt_mcp"))) / "identities"
    if packaged.is_dir():
        return packaged
    # Editable installs and source checkouts keep the blocks at the top level.
    return Path(__file__).resolve().parent.parent / "identities"


class IdentityRegistry:
    """Identity blocks by name: the built-in ones, then a user folder's."""

    def __init__(self, blocks: dict[str, IdentityBlock]) -> None:
        self._blocks = dict(sorted(blocks.items()))

    @classmethod
    def load(cls, user_dir: Path | None = None) -> IdentityRegistry:
        """Load every block; a broken file raises IdentityError."""
        blocks = {block.name: block for block in _load_folder(builtin_identity_dir())}
        if user_dir is not None:
            if not user_dir.is_dir():
                raise IdentityError(
                    f"TAKT_IDENTITY_DIR={user_dir} is not a folder; "
                    "create it or unset the variable."
                )
            for block in _load_folder(user_dir):
                if block.name in blocks:
                    logger.warning(
                        "identity %r from %s replaces the built-in block", block.name, block.path
                    )
                blocks[block.name] = block
        return cls(blocks)

    def names(self) -> list[str]:
        return list(self._blocks)

    def blocks(self) -> list[IdentityBlock]:
        return list(self._blocks.values())

    def get(self, name: str) -> IdentityBlock:
        try:
            return self._blocks[name]
        except KeyError:
            raise UnknownIdentityError(name, self.names()) from None


def _load_folder(folder: Path) -> list[IdentityBlock]:
    blocks = []
    for path in sorted(folder.glob(f"*{IDENTITY_SUFFIX}")):
        try:
            # utf-8-sig drops a byte-order mark that some editors write.
            source = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise IdentityError(f"{path}: cannot read identity block: {error}") from None
        block = parse_identity(source, path)
        if block.name != path.stem:
            raise IdentityError(
                f"{path}:2: name {block.name!r} does not match the file name; "
                f"rename the file to {block.name}{IDENTITY_SUFFIX} or change the name."
            )
        blocks.append(block)
    return blocks
