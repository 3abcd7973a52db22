"""Every router the server mounts. Adding a dialect or a resource is adding one line here."""

from headwater.api.dialects import openai as openai_dialect
from headwater.api.dialects import flowise as flowise_dialect
from headwater.api.dialects import wayscloud as wayscloud_dialect
from headwater.api.dialects import waterflai as waterflai_dialect
from headwater.api.dialects import flowgen as flowgen_dialect
from headwater.api.dialects import playground as playground_dialect
from headwater.api.native import apps, health, keys, providers, runs, sessions, workspaces
from headwater.api.native import knowledge
from headwater.api.native import metrics
from headwater.api.native import mcp_servers
from headwater.api.native import app_documents, provider_models
from headwater.api.dialects import flowise_upsert
from headwater.web import routes as studio
import headwater.knowledge.ingest  # noqa: F401,E402  (registers the ingest_document job handler)

ROUTER_MODULES = [
    health,
    workspaces,
    keys,
    apps,
    app_documents,
    providers,
    provider_models,
    sessions,
    runs,
    metrics,
    knowledge,
    mcp_servers,
    flowise_upsert,
    openai_dialect,
    waterflai_dialect,
    wayscloud_dialect,
    flowise_dialect,
    flowgen_dialect,
    playground_dialect,
    studio,
]
