"""Model quality: the held-out split, built-in metrics, scoring a version, the publish gate (issue 19)."""
