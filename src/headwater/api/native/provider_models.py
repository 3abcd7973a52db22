"""The models a provider offers: the configured list, or the provider's own list when none is configured."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from headwater.api.deps import AnyKey, DbSession, RuntimeDep
from headwater.errors import HeadwaterError

router = APIRouter(prefix="/v1/providers", tags=["providers"])

LIST_TIMEOUT_SECONDS = 15.0


@router.get("/{provider_id}/models")
async def list_provider_models(provider_id: str, principal: AnyKey, db: DbSession, runtime: RuntimeDep):
    service = runtime.provider_service(db)
    builtin = service.builtins.get(provider_id)
    view = None if builtin is not None else await service.get(principal.workspace_id, provider_id)
    name = builtin.name if builtin is not None else view.name
    configured = builtin.models if builtin is not None else view.models
    if configured:
        return {"provider": name, "models": list(configured), "source": "configured"}
    config, _ = await service.resolve_config(principal.workspace_id, f"{name}/-")
    await db.close()  # the upstream call may take seconds: don't hold a connection meanwhile
    try:
        models = await asyncio.wait_for(service.pool.get(config).list_models(), LIST_TIMEOUT_SECONDS)
    except TimeoutError:
        raise _Unavailable(f"provider '{name}' did not list its models within {LIST_TIMEOUT_SECONDS:g}s") from None
    return {"provider": name, "models": sorted(models), "source": "provider"}


class _Unavailable(HeadwaterError):
    status_code = 504
