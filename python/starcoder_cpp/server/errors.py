"""Errors in each API's own shape. Handlers raise ApiError; the route
wrapper renders it the way the client of that API parses errors."""

from __future__ import annotations

from starlette.responses import JSONResponse

# kind -> HTTP status per API. "overloaded" is where TGI and the others differ.
_STATUS = {
    "tgi": {"validation": 422, "auth": 401, "overloaded": 429, "not_found": 404, "server": 500},
    "openai": {"validation": 400, "auth": 401, "overloaded": 503, "not_found": 404, "server": 500},
    "llamacpp": {"validation": 400, "auth": 401, "overloaded": 503, "not_found": 404, "server": 500,
                 "context": 400},
}


class ApiError(Exception):
    def __init__(self, kind: str, message: str, param: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param


def validation(message: str, param: str | None = None) -> ApiError:
    return ApiError("validation", message, param)


def error_response(api: str, err: ApiError) -> JSONResponse:
    status = _STATUS[api].get(err.kind, 400 if err.kind == "context" else 500)
    return JSONResponse(error_body(api, err, status), status_code=status)


def error_body(api: str, err: ApiError, status: int | None = None) -> dict:
    if status is None:
        status = _STATUS[api].get(err.kind, 400)
    if api == "tgi":
        kinds = {"validation": "validation", "context": "validation", "auth": "authentication",
                 "overloaded": "overloaded", "not_found": "not_found", "server": "generation"}
        return {"error": err.message, "error_type": kinds.get(err.kind, "generation")}
    if api == "openai":
        types = {"validation": "invalid_request_error", "context": "invalid_request_error",
                 "auth": "invalid_request_error", "overloaded": "server_error", "not_found": "invalid_request_error",
                 "server": "server_error"}
        codes = {"auth": "invalid_api_key", "overloaded": "overloaded", "context": "context_length_exceeded"}
        return {"error": {"message": err.message, "type": types.get(err.kind, "server_error"), "param": err.param,
                          "code": codes.get(err.kind)}}
    types = {"validation": "invalid_request_error", "auth": "authentication_error", "overloaded": "unavailable_error",
             "not_found": "not_found_error", "server": "server_error", "context": "exceed_context_size_error"}
    return {"error": {"code": status, "message": err.message, "type": types.get(err.kind, "server_error")}}
