"""ImageClassifier: fit/predict contract, persistence, determinism, best weights, resume, errors, weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from medai.errors import MedAIError  # noqa: E402
from medai.modalities.imaging.augment import (  # noqa: E402
    Compose,
    IntensityJitter,
    RandomAffine,
    RandomFlip,
    default_augmentation,
)
from medai.modalities.imaging.classifier import ImageClassifier  # noqa: E402
from medai.modalities.imaging.networks import build_network, load_pretrained  # noqa: E402

torch.set_num_threads(2)

FAST = dict(network="small-cnn", width=8, batch_size=16, epochs=2, progress=False, num_threads=2)


def toy(n: int = 64, size: int = 16, seed: int = 0, dims: int = 2, labels=(0, 1)):
    """Images whose class shows as a bright square (class 1) or not (class 0)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 0.3, (n, 1) + (size,) * dims).astype(np.float32)
    y = np.array([labels[i % 2] for i in range(n)])
    sl = (slice(None),) * 0 + tuple(slice(size // 4, size // 2) for _ in range(dims))
    for i in range(n):
        if i % 2:
            X[(i, 0) + sl] += 0.6
    return X, y


def state_equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_fit_predict_shapes_and_probabilities():
    X, y = toy(labels=("normal", "pneumonia"))
    clf = ImageClassifier(**FAST).fit(X, y, X[:32], y[:32])
    proba = clf.predict_proba(X[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert set(clf.predict(X[:10])) <= {"normal", "pneumonia"}
    assert list(clf.classes_) == ["normal", "pneumonia"]
    assert len(clf.history_) == 2 and {"train_loss", "val_auroc", "lr"} <= set(clf.history_[0])
    assert clf.input_shape_ == (1, 16, 16)


def test_multiclass_and_3d():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (24, 1, 12, 12, 12)).astype(np.float32)
    y = np.arange(24) % 3
    clf = ImageClassifier(spatial_dims=3, **{**FAST, "epochs": 1}).fit(X, y, X, y)
    assert clf.predict_proba(X).shape == (24, 3)
    assert 0.0 <= clf.history_[0]["val_auroc"] <= 1.0


def test_save_load_round_trip(tmp_path):
    X, y = toy()
    clf = ImageClassifier(**FAST).fit(X, y)
    clf.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"weights.safetensors", "network.json"}
    back = ImageClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.get_params()["network"] == "small-cnn" and list(back.classes_) == [0, 1]


def test_same_seed_same_result_and_other_seed_differs():
    X, y = toy()
    a = ImageClassifier(seed=3, **FAST).fit(X, y).predict_proba(X)
    b = ImageClassifier(seed=3, **FAST).fit(X, y).predict_proba(X)
    c = ImageClassifier(seed=4, **FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


class Recorder(ImageClassifier):
    def _end_of_epoch(self, epoch):
        self.snapshots_ = getattr(self, "snapshots_", [])
        self.snapshots_.append({k: v.detach().clone() for k, v in self.network_.state_dict().items()})


def test_best_weights_are_really_restored():
    # validation labels are the opposite of the training ones: the better the network learns, the worse the
    # validation AUROC, so the best epoch is an early one and the final weights must be replaced by it.
    X, y = toy(n=96)
    clf = Recorder(**{**FAST, "epochs": 5, "patience": None, "lr": 3e-3}).fit(X, y, X, 1 - y)
    assert clf.best_epoch_ < len(clf.history_)
    best = clf.snapshots_[clf.best_epoch_ - 1]
    final = clf.snapshots_[-1]
    now = clf.network_.state_dict()
    assert state_equal(best, now)
    assert not state_equal(final, now)
    assert clf.best_score_ == max(h["val_auroc"] for h in clf.history_)


def test_early_stopping_stops():
    X, y = toy(n=96)
    clf = ImageClassifier(**{**FAST, "epochs": 8, "patience": 1, "lr": 3e-3}).fit(X, y, X, 1 - y)
    assert len(clf.history_) < 8


class Interrupted(ImageClassifier):
    def _end_of_epoch(self, epoch):
        if epoch == 0:
            raise KeyboardInterrupt


def test_checkpoint_resume_matches_uninterrupted(tmp_path):
    X, y = toy()
    params = {**FAST, "epochs": 3}
    full = ImageClassifier(**params).fit(X, y, X[:32], y[:32])
    with pytest.raises(KeyboardInterrupt):
        Interrupted(**params).fit(X, y, X[:32], y[:32], checkpoint_dir=tmp_path)
    assert (tmp_path / "checkpoint.safetensors").exists()
    resumed = ImageClassifier(**params).fit(X, y, X[:32], y[:32], checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3]
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-6)
    # a checkpoint from other hyper-parameters is refused
    with pytest.raises(MedAIError, match="hyper-parameters"):
        ImageClassifier(**{**params, "lr": 0.5}).fit(X, y, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y: (X[:, 0], y), "dimensions"),
        (lambda X, y: (X, y[:-1]), "labels but there are"),
        (lambda X, y: (X, np.zeros_like(y)), "only one class"),
        (
            lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X).astype(np.float32), y),
            "NaN",
        ),
        (lambda X, y: (X * 255, y), r"expected \[0, 1\]"),
        (lambda X, y: ((X * 255).astype(np.uint8), y), "dtype uint8"),
    ],
)
def test_bad_fit_input(mutate, match):
    X, y = toy()
    Xb, yb = mutate(X, y)
    with pytest.raises(MedAIError, match=match):
        ImageClassifier(**FAST).fit(Xb, yb)


def test_bad_predict_input_and_unfitted():
    X, y = toy()
    with pytest.raises(MedAIError, match="not fitted"):
        ImageClassifier(**FAST).predict(X)
    clf = ImageClassifier(**{**FAST, "epochs": 1}).fit(X, y)
    with pytest.raises(MedAIError, match="channel"):
        clf.predict_proba(np.repeat(X, 3, axis=1))
    with pytest.raises(MedAIError, match="network"):
        ImageClassifier(network="vgg", progress=False).fit(X, y)


def test_pretrained_weights_load_and_mismatch(tmp_path):
    from safetensors.torch import save_file

    src = build_network("small-cnn", 2, 1, 2, width=8)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pt", "w.safetensors"):
        dst = load_pretrained(build_network("small-cnn", 2, 1, 2, width=8), tmp_path / name)
        assert state_equal(state, dst.state_dict())
    # a 3-class network does not fit a 2-class state dict: the error names the mismatched head
    with pytest.raises(MedAIError, match=r"shape mismatch.*fc\.weight"):
        load_pretrained(build_network("small-cnn", 2, 1, 3, width=8), tmp_path / "w.pt")
    head_skipped = load_pretrained(
        build_network("small-cnn", 2, 1, 3, width=8), tmp_path / "w.pt", skip_mismatched_head=True
    )
    assert torch.equal(head_skipped.state_dict()["features.stem.0.weight"], state["features.stem.0.weight"])
    with pytest.raises(MedAIError, match="missing key"):
        load_pretrained(build_network("resnet18", 2, 1, 2), tmp_path / "w.safetensors")
    with pytest.raises(MedAIError, match="does not exist"):
        load_pretrained(src, tmp_path / "nope.pt")
    # the classifier starts from the given weights (lr 0 keeps them) and reports mismatches as MedAIError
    X, y = toy()
    clf = ImageClassifier(
        **{**FAST, "epochs": 1, "lr": 0.0, "augment": False},
        pretrained_weights=str(tmp_path / "w.safetensors"),
    ).fit(X, y)
    got = clf.network_.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state if "running" not in k and "num_batches" not in k)
    with pytest.raises(MedAIError, match="do not fit"):
        ImageClassifier(**{**FAST, "width": 16}, pretrained_weights=str(tmp_path / "w.pt")).fit(X, y)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "densenet121", "small-cnn"])
@pytest.mark.parametrize("dims", [2, 3])
def test_networks_build_and_forward(name, dims):
    # DenseNet-121 pools 32x down (its input must be >= 32 px); the others accept small inputs.
    size = 32 if name == "densenet121" else (16 if dims == 2 else 8)
    net = build_network(name, dims, 1, 3).eval()
    with torch.no_grad():
        out = net(torch.rand((2, 1) + (size,) * dims))
    assert out.shape == (2, 3)


def test_resnet_stems_keep_resolution():
    std = build_network("resnet18", 2, 1, 2, stem="standard")
    small = build_network("resnet18", 2, 1, 2, stem="small")
    assert std.conv1.stride == (2, 2) and small.conv1.stride == (1, 1)
    assert small.no_max_pool and not std.no_max_pool
    with torch.no_grad():  # the full-resolution stem keeps 28 px at 28 px before layer1
        assert small.conv1(torch.rand(1, 1, 28, 28)).shape[-1] == 28


def test_augmentations_are_seeded_and_shape_preserving():
    x = torch.rand(4, 1, 16, 16)
    aug = default_augmentation(2, hflip=True)
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    v = np.random.default_rng(0).uniform(0, 1, (2, 1, 8, 8, 8)).astype(np.float32)
    out = Compose([RandomFlip(axes=(-1, -2), p=1.0), RandomAffine(degrees=10), IntensityJitter()])(
        v, torch.Generator().manual_seed(1)
    )
    assert isinstance(out, np.ndarray) and out.shape == v.shape
    flipped = RandomFlip(axes=(-1,), p=1.0)(v, torch.Generator())
    np.testing.assert_array_equal(flipped, v[..., ::-1])


def test_real_pneumonia_subset_learns():
    from conftest import require_data

    d = np.load(require_data("imaging/medmnist/pneumoniamnist.npz"))
    X = (d["train_images"][:600].astype(np.float32) / 255)[:, None]
    y = d["train_labels"][:600, 0]
    Xt = (d["test_images"][:200].astype(np.float32) / 255)[:, None]
    yt = d["test_labels"][:200, 0]
    from sklearn.metrics import roc_auc_score

    clf = ImageClassifier(
        network="small-cnn", width=16, epochs=3, batch_size=64, lr=3e-3, progress=False, num_threads=2
    ).fit(X, y)
    assert roc_auc_score(yt, clf.predict_proba(Xt)[:, 1]) > 0.75


def test_ema_weights_are_the_average_not_the_last_step():
    X, y = toy()
    plain = ImageClassifier(**FAST).fit(X, y)
    ema = ImageClassifier(ema_decay=0.9, **FAST).fit(X, y)
    # same seed and data: only the averaging differs, and the kept weights are not the last step's
    assert not np.allclose(plain.predict_proba(X), ema.predict_proba(X))
    assert ema.best_epoch_ == 2
    with pytest.raises(MedAIError, match="ema_decay"):
        ImageClassifier(ema_decay=1.5, **FAST).fit(X, y)


def test_ema_checkpoint_resume_matches_uninterrupted(tmp_path):
    X, y = toy()
    params = {**FAST, "epochs": 3, "ema_decay": 0.9}
    full = ImageClassifier(**params).fit(X, y, X[:32], y[:32])
    with pytest.raises(KeyboardInterrupt):
        Interrupted(**params).fit(X, y, X[:32], y[:32], checkpoint_dir=tmp_path)
    resumed = ImageClassifier(**params).fit(X, y, X[:32], y[:32], checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-6)


def test_ensemble_averages_its_members_and_round_trips(tmp_path):
    from medai.modalities.imaging.gradcam import gradcam
    from medai.modalities.imaging.onnx_runtime import OnnxImageClassifier, export_onnx

    X, y = toy(labels=("a", "b"))
    params = {**FAST, "lr": 3e-3}
    ens = ImageClassifier(n_members=2, seed=5, **params).fit(X, y, X[:32], y[:32])
    members = [ImageClassifier(seed=s, **params).fit(X, y, X[:32], y[:32]) for s in (5, 1005)]
    expected = np.mean([m.predict_proba(X) for m in members], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), expected, atol=1e-6)
    assert [m["seed"] for m in ens.members_] == [5, 1005]
    assert ens.best_epoch_ == [m.best_epoch_ for m in members]
    assert [h["member"] for h in ens.history_] == [0, 0, 1, 1]
    assert ens.best_score_ == pytest.approx(roc_auc_score(y[:32] == "b", ens.predict_proba(X[:32])[:, 1]))

    ens.save(tmp_path / "m")
    back = ImageClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X), ens.predict_proba(X))
    assert back.members_ == ens.members_

    onnx = OnnxImageClassifier(export_onnx(ens, tmp_path / "m.onnx"))
    np.testing.assert_allclose(onnx.predict_proba(X), ens.predict_proba(X), atol=1e-5)
    heat = gradcam(ens, X[:4])
    assert heat.shape == (4, 16, 16) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    # the ensemble map is the mean of the members' maps, not member 0's alone
    only_first = gradcam(ens, X[:4], layer="members.0.features.stage3")
    assert not np.allclose(heat, only_first)


def test_ensemble_resumes_per_member(tmp_path):
    X, y = toy()
    params = {**FAST, "n_members": 2}
    full = ImageClassifier(**params).fit(X, y, X[:32], y[:32])
    ImageClassifier(**params).fit(X, y, X[:32], y[:32], checkpoint_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"member-0", "member-1"}
    resumed = ImageClassifier(**params).fit(X, y, X[:32], y[:32], checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-6)
    with pytest.raises(MedAIError, match="n_members"):
        ImageClassifier(**{**FAST, "n_members": 0}).fit(X, y)


def test_mixup_is_seeded_changes_training_and_checks_its_value():
    X, y = toy()
    plain = ImageClassifier(**FAST).fit(X, y).predict_proba(X)
    a = ImageClassifier(mixup=0.4, **FAST).fit(X, y).predict_proba(X)
    b = ImageClassifier(mixup=0.4, **FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain)
    with pytest.raises(MedAIError, match="mixup"):
        ImageClassifier(mixup=-1, **FAST).fit(X, y)


def test_keep_last_trains_the_whole_schedule_and_keeps_the_final_weights():
    # validation labels inverted, as in test_best_weights_are_really_restored: "best" would go back to an early
    # epoch, "last" must not
    X, y = toy(n=96)
    clf = Recorder(**{**FAST, "epochs": 4, "patience": 1, "lr": 3e-3, "keep": "last"}).fit(X, y, X, 1 - y)
    assert len(clf.history_) == 4 and clf.best_epoch_ == 4
    assert state_equal(clf.snapshots_[-1], clf.network_.state_dict())
    assert clf.best_score_ == clf.history_[-1]["val_auroc"]
    with pytest.raises(MedAIError, match="keep"):
        ImageClassifier(keep="first", **FAST).fit(X, y)


def test_mixed_ensemble_builds_each_member_from_its_parameters(tmp_path):
    from medai.modalities.imaging.gradcam import gradcam

    X, y = toy()
    mixed = [{}, {"network": "resnet18", "stem": "standard"}]
    ens = ImageClassifier(n_members=3, member_params=mixed, **{**FAST, "epochs": 1}).fit(X, y, X[:32], y[:32])
    assert [m["network"] for m in ens.members_] == ["small-cnn", "resnet18", "small-cnn"]
    assert [type(m).__name__ for m in ens.network_.members] == ["SmallCNN", "ResNet", "SmallCNN"]
    ens.save(tmp_path / "m")
    back = ImageClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X), ens.predict_proba(X))
    assert gradcam(back, X[:2]).shape == (2, 16, 16)
    with pytest.raises(MedAIError, match="member_params may not set"):
        ImageClassifier(n_members=2, member_params=[{"seed": 3}], **FAST).fit(X, y)
    with pytest.raises(MedAIError, match="member_params may not set"):
        ImageClassifier(n_members=2, member_params=[{"colour": 3}], **FAST).fit(X, y)


def test_bad_member_params_fail_before_any_member_trains(monkeypatch):
    X, y = toy(n=16)

    def no_training(*args, **kwargs):
        raise AssertionError("a member trained before its parameters were checked")

    monkeypatch.setattr(ImageClassifier, "_fit_network", no_training)
    with pytest.raises(MedAIError, match="member_params may not set"):
        ImageClassifier(n_members=2, member_params=[{}, {"colour": 3}], **FAST).fit(X, y)
