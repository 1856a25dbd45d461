from fractions import Fraction

import numpy as np
import pytest
import torch

from models.errors import CheckpointError, WrongBandCountError
from models.nn.checkpoint import build_bundle, load_bundle, save_bundle
from models.nn.inference import classify, decide_patches


def small_bundle():
    torch.manual_seed(0)
    return build_bundle(
        class_names=["water", "vegetation", "built"],
        bands=["B02", "B03", "B04", "B08"],
        band_mean=[1000.0, 900.0, 800.0, 2000.0],
        band_std=[300.0, 300.0, 300.0, 600.0],
        hr_size=(32, 32),
        lr_size=(8, 8),
        model_id="test",
    )


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    bundle = small_bundle()
    path = save_bundle(bundle, tmp_path / "b.pt")
    loaded = load_bundle(path)
    for name, net in bundle.networks().items():
        for (k, v), (k2, v2) in zip(
            net.state_dict().items(), loaded.networks()[name].state_dict().items(), strict=False
        ):
            assert k == k2 and torch.equal(v, v2)
    assert loaded.class_names == ["water", "vegetation", "built"]
    assert loaded.metadata["model_id"] == "test"
    assert loaded.metadata["band_mean"] == [1000.0, 900.0, 800.0, 2000.0]
    assert "created" in loaded.metadata and "git_commit" in loaded.metadata
    lr = np.random.default_rng(0).uniform(500, 2500, (2, 4, 8, 8)).astype("float32")
    bundle.eval()
    assert decide_patches(bundle, lr) == decide_patches(loaded, lr)


def test_corrupt_or_foreign_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a PatchDrop checkpoint"):
        load_bundle(bad)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a torch.save zip archive"):
        load_bundle(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_bundle(tmp_path)
    objects = tmp_path / "objects.pt"
    torch.save({"format": "x", "anything": Fraction(1, 3)}, objects)  # a Python object weights_only refuses
    with pytest.raises(CheckpointError, match="Python objects besides tensors") as refused:
        load_bundle(objects)
    assert "weights_only" not in str(refused.value)  # never advise running the file's code
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="format tag"):
        load_bundle(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_bundle(tmp_path / "missing.pt")
    path = save_bundle(small_bundle(), tmp_path / "ok.pt")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        load_bundle(truncated)


def test_mismatched_weights_are_refused(tmp_path):
    path = save_bundle(small_bundle(), tmp_path / "b.pt")
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["architecture"]["policy"]["width"] = 8
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="policy"):
        load_bundle(path)


def test_inference_outputs_and_band_check():
    bundle = small_bundle().eval()
    lr = np.random.default_rng(1).uniform(500, 2500, (3, 4, 8, 8))
    decisions = decide_patches(bundle, lr, max_patches=2)
    assert len(decisions) == 3
    d = decisions[0]
    assert len(d.probabilities) == 16 and len(d.selected) <= 2
    assert sum(d.lr_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    hr = np.random.default_rng(2).uniform(500, 2500, (3, 4, 32, 32))
    out = classify(bundle, lr, hr, [[0, 1], [], list(range(16))])
    assert [c.patches_used for c in out] == [2, 0, 16]
    with pytest.raises(WrongBandCountError, match="3 bands"):
        decide_patches(bundle, lr[:, :3])
