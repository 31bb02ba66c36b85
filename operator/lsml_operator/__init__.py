"""lsml-operator: reconciles MLBackend resources (lsml.dev/v1alpha1) into a running Label Studio ML backend.

The control plane of lsml. It may import ``lsml.labelstudio`` (the one Label Studio client);
the runtime (``lsml``) never imports this package.
"""

GROUP = "lsml.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLBackend"
PLURAL = "mlbackends"
FIELD_MANAGER = "lsml-operator"

__all__ = ["GROUP", "VERSION", "API_VERSION", "KIND", "PLURAL", "FIELD_MANAGER"]
