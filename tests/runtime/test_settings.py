import dataclasses
import pickle
from pathlib import Path

import pytest

from lsml.settings import ServingSettings, Settings


def test_defaults_follow_the_architecture_table(tmp_path):
    s = Settings.from_env(env={}, backend_dir=tmp_path)
    assert s.model_dir == tmp_path.resolve() / "data" / "models"
    assert s.redis_url is None and s.queue_name == "lsml-training"
    assert (s.predict_concurrency, s.model_load_timeout, s.keep_versions) == (4, 60.0, 5)
    assert s.max_body_bytes == 10485760 and s.reload_interval == 0.5
    assert not s.basic_auth_enabled


def test_env_values_are_parsed(tmp_path):
    s = Settings.from_env(
        env={
            "MODEL_DIR": str(tmp_path / "m"),
            "LSML_PREDICT_CONCURRENCY": "2",
            "LSML_KEEP_VERSIONS": "3",
            "BASIC_AUTH_USER": "u",
            "BASIC_AUTH_PASS": "p",
            "REDIS_URL": "redis://x:1/0",
            "LSML_MODEL": "model:M",
            "LOG_LEVEL": "debug",
        },
        backend_dir=tmp_path,
    )
    assert s.model_dir == (tmp_path / "m").resolve()
    assert s.predict_concurrency == 2 and s.keep_versions == 3 and s.model == "model:M"
    assert s.basic_auth_enabled and s.redis_url == "redis://x:1/0" and s.log_level == "DEBUG"


def test_bad_numbers_name_the_variable(tmp_path):
    with pytest.raises(ValueError, match="LSML_PREDICT_CONCURRENCY"):
        Settings.from_env(env={"LSML_PREDICT_CONCURRENCY": "many"}, backend_dir=tmp_path)
    with pytest.raises(ValueError, match="LSML_PREDICT_CONCURRENCY"):
        Settings.from_env(env={"LSML_PREDICT_CONCURRENCY": "0"}, backend_dir=tmp_path)
    for raw in ("nan", "inf", "-1", "soon"):
        with pytest.raises(ValueError, match="LSML_PREDICT_WAIT_TIMEOUT"):
            Settings.from_env(env={"LSML_PREDICT_WAIT_TIMEOUT": raw}, backend_dir=tmp_path)


def test_settings_pickle_and_hide_secrets_in_repr(tmp_path):
    s = Settings.from_env(
        env={"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "hunter2", "LABEL_STUDIO_API_KEY": "tok"}, backend_dir=tmp_path
    )
    assert pickle.loads(pickle.dumps(s)) == s
    assert "hunter2" not in repr(s) and "tok" not in repr(s)
    assert s.replace(model_dir=str(tmp_path)).model_dir == Path(tmp_path)


def test_label_studio_url_and_key_read_the_reference_sdks_fallback_names(tmp_path):
    def read(**env):
        s = Settings.from_env(env=env, backend_dir=tmp_path)
        return s.label_studio_url, s.label_studio_api_key

    assert read(LABEL_STUDIO_HOST="http://ls:8080", LABEL_STUDIO_ACCESS_TOKEN="t") == ("http://ls:8080", "t")
    assert read(
        LABEL_STUDIO_URL="http://a:1",
        LABEL_STUDIO_HOST="http://b:2",
        LABEL_STUDIO_API_KEY="k",
        LABEL_STUDIO_ACCESS_TOKEN="t",
    ) == ("http://a:1", "k")
    assert read(HOSTNAME="container-7f3a") == (None, None)  # the reference's last fallback: not a Label Studio


def test_scoring_is_off_by_default_and_on_with_the_quality_gate():
    """A fit sees every annotation unless asked (as with the reference SDK); the gate compares scores, so it
    turns the held-out split on unless the fraction is set explicitly."""
    from lsml.settings import GATE_HOLDOUT_FRACTION

    assert Settings.from_env(env={}).holdout_fraction == 0.0
    gated = Settings.from_env(env={"LSML_QUALITY_GATE": "accuracy:0.02"})
    assert gated.holdout_fraction == GATE_HOLDOUT_FRACTION > 0
    explicit = Settings.from_env(env={"LSML_QUALITY_GATE": "accuracy", "LSML_HOLDOUT_FRACTION": "0.3"})
    assert explicit.holdout_fraction == 0.3


@pytest.mark.parametrize(
    "cls",
    [Settings, ServingSettings],
)
def test_every_declared_minimum_is_enforced_naming_the_variable(cls, tmp_path):
    """The minimum lives in the field's declaration, and from_env reads through it: one below is refused."""
    bounded = [f for f in dataclasses.fields(cls) if f.metadata.get("minimum")]
    assert bounded, "no declared minimum: the test would prove nothing"
    for f in bounded:
        name, minimum = f.metadata["env"], f.metadata["minimum"]
        below = str(minimum - 1 if isinstance(f.default, int) else minimum / 2)
        build = (lambda env: cls.from_env(env, backend_dir=tmp_path)) if cls is Settings else cls.from_env
        with pytest.raises(ValueError, match=name):
            build({name: below})
        assert getattr(build({name: str(minimum)}), f.name) == minimum
