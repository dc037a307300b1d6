"""The runner facade (``DefaultRunner``) and its management services."""
