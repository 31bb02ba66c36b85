"""The MLBackend resource as typed models (:mod:`.model`) and the CRD generated from them (:mod:`.document`).

Pure: pydantic and PyYAML only, so the builders may import it (pyproject.toml's import contracts).
"""
