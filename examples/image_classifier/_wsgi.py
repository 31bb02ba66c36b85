"""Entry point of this ML backend: gunicorn serves `_wsgi:app`.

Run it with `label-studio-ml start .` (or `gunicorn --chdir . _wsgi:app`).
MODEL names the model class as "module:Class"; LSML_MODEL overrides it.
"""

from lsml.server import create_app

MODEL = "model:ImageClassifier"

app = create_app(MODEL)
