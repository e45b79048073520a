"""check_params: refuse an invalid params.yaml, even when every other stage is up to date.

dvc.yaml lists it first, with params.yaml itself (as a file) and the code that reads it as its only
deps and no outputs: DVC runs it whenever params.yaml changes, before any other stage, and no stage
waits for it, so a valid edit re-runs only the stages whose params changed.
"""

from __future__ import annotations

from crossling.common import log, run_stage, stage_parser
from crossling.config import Config


def main(args, cfg: Config) -> None:
    log.info("%s is valid", args.params)


def cli(argv: list[str] | None = None) -> None:
    run_stage("check_params", main, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    cli()
