"""Training settings are checked where they enter (config file, ``--set``), and the training CLIs answer a
bad setting, file or stage with one ``error`` line and exit status 2, before any training runs."""

from __future__ import annotations

import json

import pytest

from models.train import main as train_main
from models.training.config import TrainConfig
from models.training.spend_calibrate import main as calibrate_main


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"cls_epochs": -1}, "cls_epochs must be at least 0"),
        ({"augment_flip": "false"}, "augment_flip must be bool"),
        ({"cls_batch": 0}, "cls_batch must be at least 1"),
        ({"cls_lr": 0}, "cls_lr must be above 0"),
        ({"sigma_pt": float("nan")}, "sigma_pt must be above 0"),
        ({"budget_mix": 1.5}, "budget_mix must lie in 0..1"),
        ({"seed": "a"}, "seed must be int"),
        ({"fill": "bogus"}, "fill must be one of lr, zeros"),
        ({"policy_depth": 9}, "policy_depth must be 6n \\+ 2"),
    ],
)
def test_bad_settings_are_refused(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**values)


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [("augment_flip", "false", False), ("augment_flip", "True", True), ("cls_lr", ".5", 0.5),
     ("cls_epochs", "+3", 3), ("sigma_ft2", "null", None), ("fill", "zeros", "zeros")],
)  # fmt: skip
def test_set_values_are_read_as_their_fields_type(key, text, value):
    assert TrainConfig.setting_from_text(key, text) == value
    assert type(TrainConfig.setting_from_text(key, text)) is type(value)


def test_set_refuses_what_is_not_a_setting():
    with pytest.raises(ValueError, match="unknown setting 'to_dict'"):
        TrainConfig.setting_from_text("to_dict", "1")


def test_ints_are_accepted_for_float_settings():
    assert TrainConfig(cls_lr=1).cls_lr == 1.0 and isinstance(TrainConfig(cls_lr=1).cls_lr, float)


def test_a_config_file_must_be_an_object(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        TrainConfig.from_json(path)


def train(tmp_path, *extra: str) -> list[str]:
    return ["classifiers", "--benchmark", "chips", "--out", str(tmp_path / "run"), *extra]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--set", "augment_flip=false"), None),  # parsed as JSON false, then fails on the missing chips
        (("--set", "augment_flip=maybe"), "augment_flip must be true or false"),
        (("--set", "cls_epochs=-2"), "cls_epochs must be at least 0"),
        (("--set", "nothing=1"), "unknown setting 'nothing'"),
        (("--config", "/no/such/config.json"), "No such file or directory"),
    ],
)
def test_the_training_cli_refuses_bad_settings_in_one_line(tmp_path, capsys, extra, fragment):
    code = train_main(train(tmp_path, "--data-root", str(tmp_path / "no_chips"), *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("error"), err
    if fragment:
        assert fragment in err[-1]
    else:  # the setting itself was accepted: the error is the data's
        assert err[-1].startswith("error [dataset_not_found]: chip folder not found")


def test_the_training_cli_names_missing_data_with_its_code(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"eval_batch": 8}))
    argv = ["pt", "--benchmark", "chips", "--out", str(tmp_path / "run"), "--data-root", "/no/chips"]
    assert train_main([*argv, "--config", str(config)]) == 2
    assert "error [dataset_not_found]: chip folder not found" in capsys.readouterr().err


def test_calibration_needs_at_least_one_bin(tmp_path):
    with pytest.raises(SystemExit) as done:  # refused before the bundle is even looked for
        calibrate_main(["--bins", "0", "--bundle", str(tmp_path / "b.pt"), "--out", str(tmp_path / "o.pt")])
    assert done.value.code == 2


def test_calibration_of_a_missing_bundle_is_one_line(capsys, tmp_path):
    assert calibrate_main(["--bundle", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "error [invalid_checkpoint]" in capsys.readouterr().err
