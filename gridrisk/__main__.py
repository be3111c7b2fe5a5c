"""`python -m gridrisk …`: the `gridrisk` command for an interpreter whose scripts folder is not on PATH."""

from gridrisk.cli import app

if __name__ == "__main__":
    app(prog_name="gridrisk")
