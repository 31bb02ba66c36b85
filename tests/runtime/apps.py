"""In-process servers for the runtime tests: the label config they share and create_app with its test client."""

from __future__ import annotations

from typing import Any

from lsml.settings import Settings

# The sentiment config of tests/fixtures/label_studio.py, plus predicted_values: model label names that
# map onto a config label (`neg`, `bad` -> Negative).
TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative" predicted_values="neg,bad"/>
  </Choices>
</View>"""


def make_client(model: Any, settings: Settings, **overrides: Any) -> tuple[Any, Any]:
    """create_app(model, settings with overrides) and its Flask test client."""
    from lsml.server import create_app

    app = create_app(model, settings.replace(**overrides) if overrides else settings)
    return app, app.test_client()
