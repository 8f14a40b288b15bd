"""Optional compiled kernels for the rules' per-frame hot paths (``pip install streamseg[fast]``).

Rule evaluation runs once per frame per stream, over every tracked object. Its vectorized numpy
paths (:mod:`streamseg.rle`, :mod:`streamseg.rules.footprints`) spend most of their time in
the overhead of a few dozen small array calls per measure, not in the arithmetic. With numba
installed, they run as compiled loops instead (:mod:`streamseg._kernels`): a zone's pixels of
every crop, the lowest mask pixel of sampled columns (footprints), their mapping to the ground,
and the nearest footprint. The results are the same, bit for bit (the tests compare both paths
on random inputs), so numba is an accelerator, not a requirement.

The kernels compile once per process (about 1.5 s together, when a rule engine is built) and
are cached on disk: under ``NUMBA_CACHE_DIR`` when it is set (numba's own setting; the
container images point it at ``/tmp``), else next to the package, else in the user's home.
With no writable place for the cache they compile on every start.

``STREAMSEG_NUMBA=0`` in the environment turns the kernels off (the numpy paths run).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from types import ModuleType

logger = logging.getLogger(__name__)

ENV_SWITCH = "STREAMSEG_NUMBA"
"""Environment variable: ``0`` runs the numpy paths even when numba is installed."""


def disabled() -> bool:
    """Whether ``STREAMSEG_NUMBA=0`` turns the kernels off."""
    return os.environ.get(ENV_SWITCH, "1").strip() == "0"


@functools.cache
def kernels() -> ModuleType | None:
    """The compiled kernels (:mod:`streamseg._kernels`), or None when numba is not installed
    or ``STREAMSEG_NUMBA=0``. Imported and compiled once per process, on first use (a
    :class:`~streamseg.rules.RuleEngine` asks when it is built, before the first frame)."""
    if disabled():
        logger.info("%s=0: rule measures run on numpy", ENV_SWITCH)
        return None
    try:
        from streamseg import _kernels
    except ImportError as exc:
        logger.debug(
            "numba not available (%s): rule measures run on numpy "
            "(pip install 'streamseg[fast]' for the compiled kernels)",
            exc,
        )
        return None
    started = time.perf_counter()
    _kernels.warm()
    logger.info(
        "rule measures: numba %s kernels ready in %.1f s",
        _kernels.numba.__version__,
        time.perf_counter() - started,
    )
    return _kernels
