"""meshburst: read and validate the stack's settings, build its half of the system, export outputs."""

import pulumi

from config.settings import load_settings
from stacks.burst import build_burst
from stacks.primary import build_primary

# Validation happens here, before any resource is registered: a bad value changes nothing.
settings = load_settings()
build = build_primary if settings.role == "primary" else build_burst
for name, value in build(settings).items():
    pulumi.export(name, value)
