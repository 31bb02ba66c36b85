"""Fixtures shared by the runtime tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsml.settings import Settings

TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative" predicted_values="neg,bad"/>
  </Choices>
</View>"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the environment, with MODEL_DIR under tmp_path."""
    return Settings.from_env(env={}, backend_dir=tmp_path).replace(
        model_dir=tmp_path / "models", reload_interval=0.0
    )


@pytest.fixture
def text_config() -> str:
    return TEXT_CONFIG
