"""faco: the FACO study (how false instruction data harms language models) as a pytest suite."""

from faco.core import numerics as _numerics  # noqa: F401 - pins CPU numerics before torch loads (see faco.core.numerics)
