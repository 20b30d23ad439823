"""Search spaces declared by learners (medai.tuning) and the road's hyper-parameter hook: no Ray needed."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import risk_frame, train_frame

from medai.errors import MedAIError
from medai.modalities.tabular.learners import TabularClassifier, TabularRegressor
from medai.tuning import Choice, Float, Int, defaults, report_progress, reporting_to, search_space, with_hyperparameters


def test_tabular_learners_declare_their_spaces():
    space = search_space(TabularClassifier(learner="lightgbm"))
    assert isinstance(space["learning_rate"], Float) and space["learning_rate"].log
    assert isinstance(space["num_leaves"], Int)
    assert isinstance(search_space(TabularClassifier(learner="random-forest"))["max_features"], Choice)
    assert set(search_space(TabularRegressor(learner="ridge"))) == {"alpha"}
    assert defaults(TabularClassifier(learner="logistic"), {"C": Float(1e-3, 1e2, log=True)}) == {"C": 1.0}


def test_auto_learner_and_undeclared_spaces_are_refused():
    with pytest.raises(MedAIError, match="--learner"):
        search_space(TabularClassifier(learner="auto"))

    class Plain:
        pass

    with pytest.raises(MedAIError, match="declares no search space"):
        search_space(Plain(), "plain")

    class Bad:
        search_space = {"x": Float(1.0, 0.5)}

    with pytest.raises(MedAIError, match="low < high"):
        search_space(Bad())


def test_with_hyperparameters_reaches_the_estimator():
    frame = risk_frame(200)
    X, y = frame.drop(columns=["outcome", "patient_id"]), (frame["outcome"] == "yes").to_numpy(int)
    strong = with_hyperparameters(TabularClassifier(learner="logistic"), {"C": 1e-4}).fit(X, y)
    weak = TabularClassifier(learner="logistic").fit(X, y)
    assert strong.pipeline_.named_steps["model"].C == 1e-4
    assert np.abs(strong.pipeline_.named_steps["model"].coef_).sum() < np.abs(weak.pipeline_.named_steps["model"]
                                                                              .coef_).sum()


def test_the_road_applies_hyperparameters_and_says_so(tmp_path):
    said = []
    result = train_frame(risk_frame(200), tmp_path / "m", learner="logistic", cv="none", n_boot=50,
                         hyperparameters={"C": 0.01}, say=said.append)
    assert result.model.learner.pipeline_.named_steps["model"].C == 0.01
    assert any("hyper-parameters set" in line for line in said)
    from medai.road import load_model

    assert load_model(tmp_path / "m").learner.params == {"C": 0.01}  # the artifact keeps them


def test_image_classifier_declares_a_space_and_reports_epochs():
    torch = pytest.importorskip("torch")
    from medai.modalities.imaging.classifier import ImageClassifier

    space = search_space(ImageClassifier())
    assert {"lr", "weight_decay"} <= set(space)
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 16, 16), dtype=np.float32)
    y = np.array([0, 1] * 20)
    X[y == 1, :, :8] *= 0.4
    seen = []
    with reporting_to(seen.append):
        ImageClassifier(network="small-cnn", epochs=2, batch_size=16, progress=False, patience=None,
                        num_threads=1).fit(X, y, X[:20], y[:20])
    assert [r["epoch"] for r in seen] == [1.0, 2.0] and all("val_auroc" in r for r in seen)
    report_progress({"val_auroc": 0.5})  # nobody listening: nothing happens
    assert torch is not None
