"""The runtime's one error family, so the CLI turns any of them into a single clear line."""


class HostRuntimeError(RuntimeError):
    """Something the runtime cannot do on this host (missing backend, failed stage, bad channel)."""


class DiscoveryError(ValueError):
    """An unusable core split; the message says which part."""
