"""The ``cloaca`` command line."""
