import pytest

from lsml import LabelStudioMLBase, ModelResponse, PredictionValue, project_key
from lsml.model import BuildContext, build_model, load_model_class, model_ref_string
from lsml.state import MemoryState
from lsml.store import LocalModelStore


class Echo(LabelStudioMLBase):
    def setup(self):
        self.set("setup_called", True)

    def predict(self, tasks, context=None, **kwargs):
        from_name, to_name, value = self.get_first_tag_occurence("Choices", "Text")
        return ModelResponse(
            predictions=[
                PredictionValue(
                    result=[
                        {
                            "from_name": from_name,
                            "to_name": to_name,
                            "type": "choices",
                            "value": {"choices": ["Positive"]},
                        }
                    ],
                    score=0.9,
                )
                for _ in tasks
            ]
        )


class OwnInit(LabelStudioMLBase):
    def __init__(self, project_id=None, label_config=None):
        super().__init__(project_id, label_config)
        self.extra = 1


@pytest.mark.parametrize(
    "value,key",
    [
        ("3.1700000000", "3"),
        ("3", "3"),
        (3, "3"),
        ({"id": 7, "title": "x"}, "7"),
        (None, "default"),
        ("", "default"),
        ("my-project", "my-project"),
    ],
)
def test_project_key_normalises_label_studio_names(value, key):
    assert project_key(value) == key


@pytest.mark.parametrize("bad", ["../etc", "a b", {"title": "no id"}, [1], True])
def test_project_key_refuses_unsafe_values(bad):
    with pytest.raises(ValueError):
        project_key(bad)


def ctx(settings, state=None, version=None):
    return BuildContext(settings=settings, state=state or MemoryState(), version=version)


def test_model_parses_config_and_uses_per_project_state(settings, text_config):
    state = MemoryState()
    m = build_model(Echo, "5", text_config, ctx(settings, state))
    assert m.project_id == "5"
    assert m.label_config == text_config
    assert m.parsed_label_config["sentiment"]["labels"] == ["Positive", "Negative"]
    assert m.get("setup_called") is True and m.has("setup_called") and not m.has("nope")
    assert state.get("5", "label_config") == text_config
    assert m.model_version == LabelStudioMLBase.INITIAL_MODEL_VERSION
    out = m.predict([{"id": 1, "data": {"text": "hi"}}])
    assert out.predictions[0].result[0]["from_name"] == "sentiment"


def test_label_config_comes_from_state_when_not_given(settings, text_config):
    state = MemoryState()
    state.set("5", "label_config", text_config)
    m = build_model(Echo, "5", None, ctx(settings, state))
    assert m.get_first_tag_occurence("Choices", "Text") == ("sentiment", "text", "text")


def test_subclass_with_its_own_init_still_gets_the_context(settings, text_config, tmp_path):
    store = LocalModelStore(tmp_path / "st")
    with store.staging("5") as out:
        v = store.publish("5", out)
    m = build_model(OwnInit, "5", text_config, ctx(settings, version=store.current("5")))
    assert m.extra == 1 and m.model_version == "v1" and m.version_dir == v.path


def test_model_version_set_by_the_model_is_used_while_untrained(settings, text_config):
    m = build_model(Echo, "5", text_config, ctx(settings))
    m.set("model_version", "custom-1")
    assert m.model_version == "custom-1" and m.get("model_version") == "custom-1"


def test_extra_params_accept_json_strings_and_dicts(settings):
    m = build_model(LabelStudioMLBase, "1", None, ctx(settings))
    assert m.extra_params == {}
    m.set_extra_params('{"a": 1}')
    assert m.extra_params == {"a": 1}
    m.set_extra_params({"b": 2})
    assert m.extra_params == {"b": 2}


def test_base_fit_trains_nothing_and_predict_must_be_overridden(settings):
    m = build_model(LabelStudioMLBase, "1", None, ctx(settings))
    assert m.fit("START_TRAINING", {}) is False
    assert m.process_event("PROJECT_UPDATED", {}, None, {}) is None
    assert "START_TRAINING" in m.TRAIN_EVENTS and "ANNOTATIONS_DELETED" in m.TRAIN_EVENTS
    with pytest.raises(NotImplementedError):
        m.predict([{}])


def test_build_label_map_uses_predicted_values_then_names(settings, text_config):
    m = build_model(Echo, "1", text_config, ctx(settings))
    assert m.build_label_map("sentiment", ["positive", "neg", "bad"]) == {
        "positive": "Positive",
        "neg": "Negative",
        "bad": "Negative",
    }


def test_label_studio_url_and_token_come_as_a_pair(settings):
    state = MemoryState()
    m = build_model(
        LabelStudioMLBase,
        "1",
        None,
        ctx(settings.replace(label_studio_url="http://env", label_studio_api_key="envtok"), state),
    )
    assert (m.get_label_studio_url(), m.get_label_studio_access_token()) == ("http://env", "envtok")
    state.set("1", "label_studio", {"hostname": "http://ls", "access_token": "t"})
    # another origin than LABEL_STUDIO_URL: ignored (tests/runtime/test_security_credentials.py)
    assert (m.get_label_studio_url(), m.get_label_studio_access_token()) == ("http://env", "envtok")


def test_token_from_setup_is_used_when_no_api_key_is_configured(settings):
    state = MemoryState()
    m = build_model(LabelStudioMLBase, "1", None, ctx(settings, state))
    state.set("1", "label_studio", {"hostname": "http://ls", "access_token": "t"})
    assert (m.get_label_studio_url(), m.get_label_studio_access_token()) == ("http://ls", "t")


def test_model_without_label_studio_url_explains_what_to_set(settings):
    m = build_model(LabelStudioMLBase, "1", None, ctx(settings))
    with pytest.raises(RuntimeError, match="LABEL_STUDIO_URL"):
        list(m.fetch_annotated_tasks())


def test_fetch_annotated_tasks_drops_unannotated_and_cancelled(settings):
    class FakeClient:
        def iter_tasks(self, project):
            assert project == 1
            yield {"id": 1, "annotations": []}
            yield {"id": 2, "annotations": [{"was_cancelled": True}]}
            yield {"id": 3, "annotations": [{"result": []}, {"was_cancelled": True}]}

    m = build_model(LabelStudioMLBase, "1", None, ctx(settings))
    m._label_studio_client = FakeClient()
    tasks = list(m.fetch_annotated_tasks())
    assert [t["id"] for t in tasks] == [3] and len(tasks[0]["annotations"]) == 1


def test_preload_task_data_keeps_plain_values_and_reads_local_files(settings, tmp_path):
    f = tmp_path / "doc.txt"
    f.write_text("hello")
    m = build_model(LabelStudioMLBase, "1", None, ctx(settings.replace(local_files_roots=[tmp_path])))
    task = {"id": 1, "data": {"text": "plain", "doc": f"file://{f}", "n": 3}}
    assert m.preload_task_data(task) == {"text": "plain", "doc": "hello", "n": 3}
    assert m.get_local_path(str(f)) == str(f)


def test_model_refs_round_trip(tmp_path):
    (tmp_path / "mymod.py").write_text("from lsml import LabelStudioMLBase\nclass M(LabelStudioMLBase):\n    pass\n")
    cls = load_model_class("mymod:M", backend_dir=tmp_path)
    assert cls.__name__ == "M" and model_ref_string(cls) == "mymod:M"
    assert load_model_class(Echo) is Echo
    with pytest.raises(ImportError):
        load_model_class("mymod:Nope", backend_dir=tmp_path)
    with pytest.raises(ValueError):
        load_model_class("nocolon")


def test_a_model_built_by_hand_keeps_state_in_memory_unless_model_dir_is_set(tmp_path, monkeypatch, text_config):
    for name in ("MODEL_DIR", "LSML_BACKEND_DIR", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    m = Echo(project_id="3.1", label_config=text_config)
    assert m.project_id == "3" and m.get("setup_called") is True
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    Echo(project_id="3", label_config=text_config)
    assert (tmp_path / "models" / ".lsml" / "state.sqlite3").exists()


def test_label_interface_is_available_like_the_reference(settings, text_config):
    m = build_model(Echo, "1", text_config, ctx(settings))
    assert m.label_interface.get_control("sentiment").labels == ["Positive", "Negative"]
    assert m.label_interface.get_first_tag_occurence("Choices", "Text") == ("sentiment", "text", "text")
