"""`warden train --sample` on the fixture CSVs: a small real model, offline, repeatable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import PayloadError
from core.settings import Settings, load_settings
from retrain.cli import evaluate, train
from retrain.sources import FetchError
from toxicity.adapter import ADAPTER_FILE, file_sha256
from toxicity.artifacts import BOOSTER_FILE, CARD_FILE, METADATA_FILE, load_meta
from toxicity.cli import score

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    cache = tmp_path_factory.mktemp("cache")
    return load_settings(stack={"cache_dir": cache}, model={"kind": "hybrid", "quantize": "none"})


def _train(settings: Settings, out: Path, seed: int = 0, *more: str) -> Path:
    result = CliRunner().invoke(
        train,
        [
            "--sample", "60", "--seed", str(seed), "--out", str(out),
            "--pool-csv", str(FIXTURES / "pool.csv"), "--hatexplain-dir", str(FIXTURES), *more,
        ],
        obj=settings,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model_dir(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(settings, tmp_path_factory.mktemp("models"))


def test_sample_training_writes_a_complete_model_dir(model_dir: Path) -> None:
    for name in (METADATA_FILE, BOOSTER_FILE, CARD_FILE):
        assert (model_dir / name).is_file(), name
    meta = load_meta(model_dir)
    assert meta.version == model_dir.name
    assert meta.encoder_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(meta.encoder_sha256) == 64
    assert meta.training["sample"] == 60
    assert set(meta.training["data_sha256"]) == {
        "pool.csv", "hatexplain_dev.csv", "hatexplain_test.csv", "hatexplain_train.csv"
    }  # fmt: skip
    assert meta.metrics["hatexplain_dev"]["roc_auc"] > 0.7
    assert "Context features" in (model_dir / CARD_FILE).read_text()
    # The encoder was fine-tuned: its adapter ships with the model, named in model.json.
    assert meta.encoder_adapter == file_sha256(model_dir / ADAPTER_FILE)
    assert meta.training["encoder_finetune"]["rank"] == 16


def test_same_seed_gives_the_same_model(
    settings: Settings, model_dir: Path, tmp_path: Path
) -> None:
    again = _train(settings, tmp_path)
    assert again.name == model_dir.name
    assert (again / BOOSTER_FILE).read_bytes() == (model_dir / BOOSTER_FILE).read_bytes()


def test_score_command_keeps_order_and_fields(
    settings: Settings, model_dir: Path, tmp_path: Path
) -> None:
    lines = [
        {"id": 1, "text": "You are a fucking idiot and nobody wants you here."},
        {"id": "two", "text": "Thanks for fixing the references.", "platform": "discord"},
        {"id": 3, "text": "f.u.c.k off loser"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        score,
        ["--input", str(source), "--output", str(target), "--model", str(model_dir)],
        obj=settings,
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["id"] for row in rows] == [1, "two", 3]
    assert all(
        set(row) == {"id", "p_toxic", "severity", "labels", "label_scores", "model_version"}
        for row in rows
    )
    assert rows[0]["p_toxic"] > rows[1]["p_toxic"]
    assert rows[2]["p_toxic"] > rows[1]["p_toxic"]
    assert {row["model_version"] for row in rows} == {model_dir.name}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "line 2"),
        ('{"text": "no id"}', "line 2"),
        ('{"id": 2, "text": 5}', "line 2"),
        ("[1, 2]", "line 2"),
    ],
)
def test_bad_input_line_is_named(
    settings: Settings, model_dir: Path, tmp_path: Path, bad: str, message: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "fine"}\n' + bad + "\n")
    result = CliRunner().invoke(
        score,
        ["--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--model", str(model_dir)],
        obj=settings,
    )
    assert result.exit_code != 0
    # A PayloadError: the warden CLI prints it as one line (tests/unit/warden/test_cli.py).
    assert isinstance(result.exception, PayloadError)
    assert f"in.jsonl:{message.split()[1]}" in str(result.exception)


def test_a_kept_adapter_is_not_fine_tuned_again(
    settings: Settings, model_dir: Path, tmp_path: Path
) -> None:
    adapter = model_dir / ADAPTER_FILE
    again = _train(settings, tmp_path, 0, "--adapter", str(adapter))
    meta = load_meta(again)
    assert meta.encoder_adapter == file_sha256(adapter) == file_sha256(again / ADAPTER_FILE)
    assert meta.training["encoder_finetune"] is None
    assert meta.training["encoder_adapter_kept"] == f"{model_dir.name}/{ADAPTER_FILE}"


def test_evaluate_writes_the_table_into_the_card(settings: Settings, model_dir: Path) -> None:
    result = CliRunner().invoke(
        evaluate,
        ["--model", str(model_dir), "--no-baselines", "--hatexplain-dir", str(FIXTURES)],
        obj=settings,
    )
    assert result.exit_code == 0, result.output
    card = (model_dir / CARD_FILE).read_text()
    assert "HateXplain test" in card
    assert "ROC-AUC" in card


def test_train_without_data_says_fetch_first(tmp_path: Path) -> None:
    settings = load_settings(stack={"cache_dir": tmp_path})
    result = CliRunner().invoke(train, ["--sample", "10"], obj=settings)
    assert result.exit_code != 0
    # A FetchError: the warden CLI prints it as one line.
    assert isinstance(result.exception, FetchError)
    assert "warden data fetch" in str(result.exception)
