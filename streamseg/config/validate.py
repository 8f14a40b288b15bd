"""``streamseg validate``: check pipeline files without running anything."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from streamseg.config.errors import ConfigError
from streamseg.config.loader import ClassNamesOf, load_pipeline

logger = logging.getLogger(__name__)


def validate_files(paths: Sequence[str], class_names_of: ClassNamesOf | None = None) -> int:
    """Validate each file; print ``OK <path>`` to stdout or its errors to stderr.

    A bad file never raises: every problem is printed as ``file:line:column: key.path: message``.
    ``${VAR}`` references are resolved from the process environment, so a missing variable is
    reported as it would be at run time.

    Args:
        paths: pipeline YAML files.
        class_names_of: the model's class names from its ``model`` section, when they can be
            read without running it (``streamseg.models.names.model_class_names``): rules and
            ``model.classes`` naming other classes are then errors.

    Returns:
        The exit code: 0 when every file is valid, 1 when any is not (or no file was given).
    """
    if not paths:
        print("error: no pipeline file given", file=sys.stderr)
        return 1
    failed = 0
    for path in paths:
        try:
            config = load_pipeline(path, class_names_of=class_names_of)
        except ConfigError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            count = len(exc.issues)
            print(f"FAILED {path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
            continue
        except Exception as exc:  # a loader bug must not hide the other files' results
            failed += 1
            logger.debug("validating %s failed unexpectedly", path, exc_info=True)
            print(
                f"{path}: internal error while validating ({type(exc).__name__}: {exc}); "
                "please report it",
                file=sys.stderr,
            )
            continue
        logger.debug("%s: %d sources", path, len(config.sources))
        print(f"OK {path}")
    return 1 if failed else 0
