"""CNI networking for containers: our own runner of CNI plugins (no libcni).

``config`` loads a network from a conf dir, ``exec`` runs one plugin,
``cache`` keeps ADD results in libcni's layout, ``result`` reads addresses
out of them, ``runner`` runs a network's plugin chain (ADD/DEL/CHECK) and
``errors`` holds the CNI error codes. :class:`Network` puts them together:
one network, built once, with setup/remove/check on (container ID, network
namespace); the containerd backend keeps one per (bin dir, conf dir).
"""

from __future__ import annotations

from .cache import DEFAULT_CACHE_DIR, CachedResult, ResultCache
from .config import NetworkConfigList, load_network_config, parse_network_config
from .errors import (
    CNIContainerUnknown,
    CNIError,
    CNIInvalidConfig,
    CNINotSupported,
    CNITimeout,
    CNIUnavailable,
)
from .netns import netns_path
from .network import Network
from .result import first_ip, result_ips
from .runner import DEFAULT_IFNAME, DEFAULT_TIMEOUT, CNIRunner

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_IFNAME",
    "DEFAULT_TIMEOUT",
    "CNIContainerUnknown",
    "CNIError",
    "CNIInvalidConfig",
    "CNINotSupported",
    "CNIRunner",
    "CNITimeout",
    "CNIUnavailable",
    "CachedResult",
    "Network",
    "NetworkConfigList",
    "ResultCache",
    "first_ip",
    "load_network_config",
    "netns_path",
    "parse_network_config",
    "result_ips",
]
