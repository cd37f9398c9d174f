"""Configuration: a YAML file with llm-mux compatible keys, ``MUXTRIO_*`` overrides, and the typed, frozen result.

Role: turn a config file, the environment, or code into one immutable :class:`Config` that the engine and the server
read. Every problem is one :class:`~muxtrio.errors.ConfigError` whose path is the exact key path in the YAML
(``providers[2].models[0].name``) or the environment variable that carried the bad value (``MUXTRIO_PORT``); every key
that muxtrio does not use (llm-mux's ``auth-dir``, ``payload``... or a typo) becomes a warning in ``Config.warnings``.

How: a hand-written pass (:class:`_Reader`) walks the raw YAML mapping, warns about unknown keys and rewrites
llm-mux's shapes (``api-key``/``api-keys``, bare model strings, ``routing:``, ``stream-timeout``, sizes such as
``64MiB``) into a plain dict whose keys are the attrs field names, remembering where each value came from. cattrs then
structures that dict with strict scalar hooks (no silent ``"8080"`` -> 8080, no ``true`` -> 1), the attrs validators
check ranges, and a failure is turned back into one line that names the YAML key path.

Invariants:
- Every config class is ``@attrs.frozen`` (slotted, immutable, hashable, picklable for ``--workers``; mappings are
  read-only) and every field has a default, so embedders can write
  ``Config(providers=(ProviderConfig(type=ProviderType.OPENAI, ...),))``.
  Validation runs in the classes themselves, so a config built in code is checked exactly like one read from YAML.
- Precedence: CLI flags > ``MUXTRIO_*`` environment > file > defaults. Timeouts: model > provider > global.
- Whenever ``echo_model`` is true, ``providers`` contains the built-in echo provider (model ``muxtrio-echo``).
- Secrets never appear in a repr, an error or a warning: keys go through :func:`muxtrio.errors.mask_secret`, URL
  user-info and sensitive header values are hidden.
- Loading reads files and the environment only; it never touches the network (the CLI probes for a local Ollama).
- Imports: the standard library, attrs, cattrs, PyYAML and :mod:`muxtrio.errors`; never the engine, server or upstream.

Modules: ``model`` (the typed classes), ``reader`` (the llm-mux reader), ``env`` (environment overrides), ``load``
(files, mappings and the embedded defaults).
"""

from __future__ import annotations

from muxtrio.codecs.base import HostedToolPolicy as HostedToolPolicy
from muxtrio.config.load import default_config as default_config
from muxtrio.config.load import load_config as load_config
from muxtrio.config.load import load_config_text as load_config_text
from muxtrio.config.load import parse_config as parse_config
from muxtrio.config.model import DEFAULT_BASE_URLS as DEFAULT_BASE_URLS
from muxtrio.config.model import ECHO_MODEL as ECHO_MODEL
from muxtrio.config.model import PROTOCOL_NAMES as PROTOCOL_NAMES
from muxtrio.config.model import SAMPLING_FIELD_NAMES as SAMPLING_FIELD_NAMES
from muxtrio.config.model import AccountsConfig as AccountsConfig
from muxtrio.config.model import ClientKeysConfig as ClientKeysConfig
from muxtrio.config.model import CompressionConfig as CompressionConfig
from muxtrio.config.model import Config as Config
from muxtrio.config.model import Credential as Credential
from muxtrio.config.model import GiB as GiB
from muxtrio.config.model import KeyPath as KeyPath
from muxtrio.config.model import KiB as KiB
from muxtrio.config.model import LogFormat as LogFormat
from muxtrio.config.model import LoggingConfig as LoggingConfig
from muxtrio.config.model import MetricsConfig as MetricsConfig
from muxtrio.config.model import MiB as MiB
from muxtrio.config.model import ModelConfig as ModelConfig
from muxtrio.config.model import ModelRuleConfig as ModelRuleConfig
from muxtrio.config.model import PartialTimeouts as PartialTimeouts
from muxtrio.config.model import PayloadMatch as PayloadMatch
from muxtrio.config.model import PayloadRuleConfig as PayloadRuleConfig
from muxtrio.config.model import PriceConfig as PriceConfig
from muxtrio.config.model import ProviderConfig as ProviderConfig
from muxtrio.config.model import ProviderType as ProviderType
from muxtrio.config.model import ReloadConfig as ReloadConfig
from muxtrio.config.model import RemoteManagementConfig as RemoteManagementConfig
from muxtrio.config.model import ResponseModel as ResponseModel
from muxtrio.config.model import RoutingStrategy as RoutingStrategy
from muxtrio.config.model import Segment as Segment
from muxtrio.config.model import StateBackend as StateBackend
from muxtrio.config.model import StateConfig as StateConfig
from muxtrio.config.model import Timeouts as Timeouts
from muxtrio.config.model import TLSConfig as TLSConfig
from muxtrio.config.model import UsageConfig as UsageConfig
from muxtrio.config.model import config_secrets as config_secrets
from muxtrio.config.model import redact_headers as redact_headers
from muxtrio.config.model import redact_url as redact_url
from muxtrio.config.reader import VERTEX_EXPRESS_URL as VERTEX_EXPRESS_URL
from muxtrio.errors import ConfigError as ConfigError
