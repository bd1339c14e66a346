"""``python -m rtqa``: the same as the ``rtqa`` command."""

from rtqa.cli import main

if __name__ == "__main__":
    main(prog_name="rtqa")
