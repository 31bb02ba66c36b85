"""`label_studio_ml`: label-studio-ml-backend's import path, served by lsml's engine.

A backend written for HumanSignal/label-studio-ml-backend imports `label_studio_ml.model`,
`label_studio_ml.response`, `label_studio_ml.api`, `label_studio_ml.utils`, ...; lsml ships
this package so that such a backend runs unchanged. It is a facade: every module re-exports
or adapts an lsml one (the model base class *is* `lsml.LabelStudioMLBase`, `init_app` returns
lsml's Flask app), and lsml itself never imports it (an import-linter contract in
pyproject.toml). What differs from the reference, and why, is in
docs/migrating-from-label-studio-ml-backend.md.
"""

from lsml import __version__, sdk

sdk.hint_missing_sdk()  # without lsml[sdk], `import label_studio_sdk` names the extra that brings it

package_name = "label-studio-ml"

__all__ = ["__version__", "package_name"]
