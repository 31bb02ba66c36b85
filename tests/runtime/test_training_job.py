"""run_training: build on the current version, fit into a staging dir, publish, prune."""

import pickle

import pytest

from lsml.store import LocalModelStore
from lsml.training import TrainingRequest, run_training
from tests.fixtures.sample_models import CountingModel, FailingFitModel, NoPublishModel

pytestmark = pytest.mark.unit


def test_training_publishes_a_new_version_the_next_build_loads(settings, text_config):
    request = TrainingRequest("1", "START_TRAINING", {"project": {"id": 1}}, text_config)
    out = run_training(CountingModel, request, settings, job_id="j1")
    assert out["model_version"] == "v1" and out["published"] and out["result"] == {"ok": True}
    store = LocalModelStore(settings.model_dir)
    current = store.current("1")
    assert current.name == "v1" and (current.path / "fit.json").exists()
    assert current.metadata["event"] == "START_TRAINING" and current.metadata["job"] == "j1"
    assert run_training(CountingModel, request, settings)["model_version"] == "v2"


def test_training_takes_picklable_arguments_and_a_model_ref_string(settings, text_config, tmp_path):
    (tmp_path / "trainme.py").write_text(
        "from lsml import LabelStudioMLBase\n"
        "class T(LabelStudioMLBase):\n"
        "    def fit(self, event, data, **kw):\n"
        "        (self.output_dir / 'w').write_text(self.label_config)\n"
    )
    args = (
        "trainme:T",
        TrainingRequest("2", "START_TRAINING", {}, text_config).to_dict(),
        settings.replace(backend_dir=tmp_path),
    )
    args = pickle.loads(pickle.dumps(args))
    assert run_training(*args)["model_version"] == "v1"


def test_a_fit_that_raises_leaves_no_version(settings, text_config):
    with pytest.raises(RuntimeError):
        run_training(FailingFitModel, TrainingRequest("1", "START_TRAINING", {}, text_config), settings)
    store = LocalModelStore(settings.model_dir)
    assert store.versions("1") == [] and store.current("1") is None
    assert not [p for p in store.project_dir("1").iterdir() if p.name.startswith(".staging")]


def test_fit_returning_false_publishes_nothing(settings, text_config):
    out = run_training(NoPublishModel, TrainingRequest("1", "START_TRAINING", {}, text_config), settings)
    assert out["published"] is False and out["model_version"] == "0.0.1"
    assert LocalModelStore(settings.model_dir).versions("1") == []


def test_old_versions_are_pruned(settings, text_config):
    s = settings.replace(keep_versions=2)
    for _ in range(4):
        run_training(CountingModel, TrainingRequest("1", "START_TRAINING", {}, text_config), s)
    assert [v.name for v in LocalModelStore(settings.model_dir).versions("1")] == ["v3", "v4"]


def test_label_config_falls_back_to_state_and_coalesced_triggers_reach_fit(settings, text_config):
    run_training(CountingModel, TrainingRequest("1", "START_TRAINING", {}, text_config), settings)
    req = TrainingRequest("1", "ANNOTATION_CREATED", {}, None, coalesced=[{"event": "X", "data": {}}])
    run_training(CountingModel, req, settings)
    assert CountingModel.fit_calls[-1] == ("1", "ANNOTATION_CREATED", [{"event": "X", "data": {}}])


def test_a_training_whose_trigger_carried_an_older_label_config_does_not_write_it_over_the_newer_one(
    settings, text_config
):
    """A job queued before the project's label config changed runs after the server recorded the new one: it trains
    on its own request's config, and wrote that older config over the new one (pre-labelling read the old labels)."""
    from lsml.state import make_state

    renamed = text_config.replace('value="Positive"', 'value="Good"')
    state = make_state(settings)
    state.set("1", "label_config", renamed)  # what the server recorded from the newest request
    run_training(CountingModel, TrainingRequest("1", "ANNOTATION_CREATED", {}, text_config), settings)
    assert make_state(settings).get("1", "label_config") == renamed
    # with nothing recorded (a job run without a server), the job's config is the one there is
    run_training(CountingModel, TrainingRequest("2", "START_TRAINING", {}, text_config), settings)
    assert make_state(settings).get("2", "label_config") == text_config
