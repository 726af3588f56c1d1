"""The OpenAPI 3 description of the server API, served at
``/api/v1/openapi.json`` (docs/api.md is the prose)."""


def _error(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description, schema, code="200"):
    return {code: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _errors(*codes):
    text = {
        "400": "bad JSON, a missing, unknown or invalid field",
        "401": "missing or wrong API key",
        "404": "no such user, room or path",
        "405": "method not allowed on this path (see the Allow header)",
        "409": "exists already",
        "503": "a store or the cluster is unavailable: try again",
    }
    return {c: _error(text[c]) for c in ("401", "405", "503") + codes}


def _name(description):
    return {"type": "string", "minLength": 1, "maxLength": 128, "description": description}


def _path(name, description):
    return {"name": name, "in": "path", "required": True, "schema": _name(description)}


def _body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


USER = _path("username", "user name")
ROOM = _path("roomName", "room name (world and alliance:NAME are the automatic rooms)")

OPENAPI = {
    "openapi": "3.0.3",
    "info": {
        "title": "chatnet server API",
        "version": "1",
        "description": "What the application a chat cluster serves asks of it (docs/api.md). Served by "
                       "`twistd chatgateway --api-key KEY`; every request carries `Authorization: Bearer KEY`.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "integer"}, "message": {"type": "string"}}}},
            },
        },
    },
    "paths": {
        "/messages": {"post": {
            "summary": "Post a message to a room or a user, delivered as a client's chat",
            "requestBody": _body({
                "type": "object", "required": ["message"], "additionalProperties": False,
                "description": "exactly one of roomName and to",
                "properties": {
                    "roomName": _name("the room"), "to": _name("the user (queued while offline)"),
                    "message": {"type": "string", "minLength": 1},
                    "from": _name("the sender shown (default: system); recipients get the message with system: true, "
                                  "a direct one in their conversation 'system'"),
                },
            }),
            "responses": {**_ok("accepted", {"type": "object", "properties": {
                "msgId": {"type": "string"}, "seq": {"type": "integer"}, "ts": {"type": "integer"},
                "queued": {"type": "boolean", "description": "for an offline user: kept for their next login"},
            }}), **_errors("400", "404")},
        }},
        "/presence/{username}": {"get": {
            "summary": "Whether a user is online, on which nodes, since how long",
            "parameters": [USER],
            "responses": {**_ok("the user's presence", {"type": "object", "properties": {
                "username": {"type": "string"}, "online": {"type": "boolean"},
                "nodes": {"type": "array", "items": {"type": "string"}},
                "onlineFor": {"type": "string", "nullable": True, "example": "00d 01h 02m 03s"},
            }}), **_errors("404")},
        }},
        "/rooms/{roomName}/presence": {"get": {
            "summary": "The online members of a room",
            "parameters": [ROOM],
            "responses": {**_ok("the online members", {"type": "object", "properties": {
                "roomName": {"type": "string"}, "online": {"type": "array", "items": {"type": "string"}},
                "truncated": {"type": "boolean", "description": "more are online than one answer holds (about 60 KiB of names)"},
            }}), **_errors("404")},
        }},
        "/users": {"post": {
            "summary": "Create an account",
            "requestBody": _body({
                "type": "object", "required": ["username"], "additionalProperties": False,
                "properties": {"username": _name("user name"), "password": {"type": "string", "minLength": 1,
                               "maxLength": 1024, "description": "stored as an argon2 hash; none: login without"},
                               "alliance": _name("the user's alliance")},
            }),
            "responses": {**_ok("created", {"type": "object"}, "201"), **_errors("400", "409")},
        }},
        "/users/{username}": {"delete": {
            "summary": "Delete an account and all it had: memberships, ownerships, roles, invitations, bans, mutes, "
                       "offline queue, tokens issued before, replayable conversations; sessions closed (4010)",
            "parameters": [USER],
            "responses": {**_ok("deleted", {"type": "object", "properties": {
                "sessionsClosed": {"type": "integer"}}}), **_errors("404")},
        }},
        "/users/{username}/disconnect": {"post": {
            "summary": "Close every session of a user on every node (WebSocket close code 4010)",
            "parameters": [USER],
            "responses": {**_ok("closed", {"type": "object", "properties": {
                "sessionsClosed": {"type": "integer"}}}), **_errors("404")},
        }},
        "/rooms": {"post": {
            "summary": "Create a room",
            "requestBody": _body({
                "type": "object", "required": ["roomName"], "additionalProperties": False,
                "properties": {"roomName": _name("room name"), "private": {"type": "boolean", "default": False},
                               "owner": _name("an existing user: the room's owner and first member")},
            }),
            "responses": {**_ok("created", {"type": "object"}, "201"), **_errors("400", "404", "409")},
        }},
        "/rooms/{roomName}": {"delete": {
            "summary": "Delete a room; a room made later under its name shows none of its history",
            "parameters": [ROOM],
            "responses": {**_ok("deleted", {"type": "object"}), **_errors("400", "404")},
        }},
        "/rooms/{roomName}/members/{username}": {
            "put": {
                "summary": "Make a user a member of a room",
                "parameters": [ROOM, USER],
                "responses": {**_ok("a member", {"type": "object", "properties": {
                    "changed": {"type": "boolean"}}}), **_errors("400", "404")},
            },
            "delete": {
                "summary": "Remove a user from a room",
                "parameters": [ROOM, USER],
                "responses": {**_ok("not a member", {"type": "object", "properties": {
                    "changed": {"type": "boolean"}}}), **_errors("400", "404")},
            },
        },
        "/openapi.json": {"get": {"summary": "This description", "responses": _ok("OpenAPI 3", {"type": "object"})}},
    },
}
