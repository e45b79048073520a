"""The DVC project as the commands outside the pipeline open it (compare, slurm); no stage imports this module,
so a change here re-runs no stage."""

from __future__ import annotations

from pathlib import Path

from crossling.common import DataError


def open_repo(root: str | Path = "."):
    """The DVC project at `root` (a dvc.repo.Repo, to use in a with-block); one that is missing or that DVC
    cannot read is a DataError in one line."""
    from dvc.config import ConfigError as DvcConfigError
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    root = Path(root).resolve()
    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise DataError(f"{root} is not a DVC project (no .dvc); run this in the crossling checkout") from None
    except DvcConfigError as exc:
        raise DataError(f"DVC cannot read its config ({exc}); correct the line or key it names in "
                        f"{root / '.dvc' / 'config'}, the config.local beside it, or your global or system DVC "
                        "config") from None
    except OSError as exc:  # an unreadable config file, a directory in its place, a read-only .dvc
        raise DataError(f"DVC cannot open the project at {root}: {exc.filename}: {exc.strerror}") from None
