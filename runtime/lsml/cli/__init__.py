"""`label-studio-ml`: argument parsing only; every command calls a runtime module."""
