"""``python -m cloaca ...``: the ``cloaca`` command."""

from cloaca.cli.main import main

if __name__ == "__main__":
    main(prog_name="cloaca")
