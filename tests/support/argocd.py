"""Run the Argo CD health checks of examples/argocd/ as Argo CD does: Lua 5.1 (Argo CD's
gopher-lua speaks 5.1), the object as the global `obj`, a table {status, message} returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51  # the test extra

REPO_ROOT = Path(__file__).resolve().parents[2]
ARGOCD = REPO_ROOT / "examples" / "argocd"


def health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(script)
    return {"status": str(result["status"]), "message": str(result["message"])}


def modeldeployment_health(obj: dict[str, Any]) -> dict[str, str]:
    return health((ARGOCD / "modeldeployment-health.lua").read_text(), obj)
