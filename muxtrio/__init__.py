"""muxtrio: an LLM API gateway on trio.

Public API: :class:`Engine` (embed the gateway in any trio program), :class:`Config` with :func:`load_config` (a file)
and :func:`parse_config` (a mapping, for embedders that build configs in code), the IR (``muxtrio.ir``)
and the error tree (``muxtrio.errors``).
"""

from muxtrio import ir
from muxtrio.config import (
    Config,
    Credential,
    ModelConfig,
    ProviderConfig,
    ProviderType,
    Timeouts,
    load_config,
    parse_config,
)
from muxtrio.engine.engine import Engine
from muxtrio.errors import MuxError

__all__ = [
    "Config",
    "Credential",
    "Engine",
    "ModelConfig",
    "MuxError",
    "ProviderConfig",
    "ProviderType",
    "Timeouts",
    "ir",
    "load_config",
    "parse_config",
]
__version__ = "0.1.0"
