"""Every router the server mounts. Adding a dialect or a resource is adding one line here."""

from headwater.api.dialects import openai as openai_dialect
from headwater.api.native import apps, health, keys, providers, runs, sessions, workspaces

ROUTER_MODULES = [
    health,
    workspaces,
    keys,
    apps,
    providers,
    sessions,
    runs,
    openai_dialect,
]
