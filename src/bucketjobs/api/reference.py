"""docs/API-REFERENCE.md, rendered from the OpenAPI document the server serves.

`python -m bucketjobs.api.reference > docs/API-REFERENCE.md` (a test checks that the committed
file is what this prints). Written here rather than with openapi-markdown: that renders each
route twice (the `/v1` alias), repeats the error body under every status (93 KB), and cannot
show jobParams per jobType; a custom template for it would be this renderer, in Jinja.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

ALIAS = "/v1/"  # every /mapi/v1 route is served here too: documented once


def render(document: Schema) -> str:
    return "\n".join(_document(document)).rstrip() + "\n"


def _document(doc: Schema) -> Iterator[str]:
    yield f"# API reference (bucketjobs {doc['info']['version']})"
    yield ""
    yield "Generated from the OpenAPI document the server serves at `GET /openapi.json` by"
    yield "`python -m bucketjobs.api.reference`: do not edit by hand. What each route does and"
    yield "why is in [API.md](API.md); what each error code means, in"
    yield "[TROUBLESHOOTING.md](TROUBLESHOOTING.md)."
    yield ""
    yield "- Every `/mapi/v1/...` route is also served under `/v1/...`."
    yield "- MAPI routes need `Authorization: Bearer <access_token>`; those that change state"
    yield "  also need the CSRF pair from `GET /mapi/v1/csrf` (cookie and `X-XSRF-TOKEN`)."
    yield '- Every error answers `{"code", "message", "details"}`.'
    yield ""
    routes = [
        (path, method, operation)
        for path, methods in doc["paths"].items()
        if not path.startswith(ALIAS)
        for method, operation in methods.items()
    ]
    yield "| Method | Path | Summary |"
    yield "|---|---|---|"
    for path, method, operation in routes:
        link = f"[`{path}`](#{_anchor(method, path)})"
        yield f"| {method.upper()} | {link} | {_summary(operation)} |"
    yield ""
    for path, method, operation in routes:
        yield from _operation(doc, path, method, operation)
    yield "## Schemas"
    yield ""
    for name, schema in doc["components"]["schemas"].items():
        if name in ("HTTPValidationError", "ValidationError"):
            continue  # FastAPI's own; every 4xx here answers the error body above
        yield f"### {name}"
        yield ""
        if schema.get("description"):
            yield _one_line(schema["description"])
            yield ""
        yield from _fields(doc, schema)


def _summary(operation: Schema) -> str:
    """The description's first sentence (the route's docstring), else FastAPI's summary."""
    text = _one_line(operation.get("description", "")).removeprefix("[ext] ")
    return _cell(text.split(". ")[0].split("; ")[0].rstrip(".")) or operation["summary"]


def _anchor(method: str, path: str) -> str:
    text = f"{method} {path}".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


def _operation(doc: Schema, path: str, method: str, operation: Schema) -> Iterator[str]:
    yield f"## {method.upper()} {path}"
    yield ""
    if operation.get("description"):
        yield _one_line(operation["description"])
        yield ""
    parameters = operation.get("parameters", [])
    if parameters:
        yield "Parameters:"
        yield ""
        yield "| Name | In | Type | Required |"
        yield "|---|---|---|---|"
        for p in parameters:
            kind = _type(doc, p.get("schema", {}))
            yield f"| `{p['name']}` | {p['in']} | {kind} | {'yes' if p.get('required') else 'no'} |"
        yield ""
    body = operation.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        schema = _resolve(doc, content.get("schema", {}))
        yield f"Request body (`{media}`):"
        yield ""
        yield from _fields(doc, schema)
        for variant in schema.get("oneOf", []):
            yield from _variant(doc, variant)
    answers = operation.get("responses", {})
    ok = [(status, answer) for status, answer in answers.items() if status.startswith("2")]
    for status, answer in ok:
        kinds = ", ".join(
            f"`{media}` {_type(doc, c.get('schema', {}))}"
            for media, c in answer.get("content", {}).items()
        )
        yield f"Answers {status}: {kinds or answer['description']}."
    errors = [f"{status} ({answers[status]['description']})" for status in sorted(answers)
              if status >= "4"]  # fmt: skip
    if errors:
        yield f"Errors: {', '.join(errors)}."
    yield ""


def _variant(doc: Schema, variant: Schema) -> Iterator[str]:
    """One jobType's jobParams (CreateJobBody's `oneOf`)."""
    props = variant.get("properties", {})
    kind = props.get("jobType", {}).get("const")
    params = next(
        (s for s in props.get("jobParams", {}).get("anyOf", []) if s.get("type") == "object"), None
    )
    if kind is None or params is None:
        return
    yield f"`jobParams` of `{kind}` (values: strings, numbers or booleans):"
    yield ""
    yield "| Key | Meaning |"
    yield "|---|---|"
    for key, spec in params["properties"].items():
        yield f"| `{key}` | {_cell(spec.get('description', ''))} |"
    yield ""


def _fields(doc: Schema, schema: Schema) -> Iterator[str]:
    schema = _resolve(doc, schema)
    if "enum" in schema and "properties" not in schema:
        yield "One of " + ", ".join(f"`{v}`" for v in schema["enum"]) + "."
        yield ""
        return
    props = schema.get("properties", {})
    if not props:
        yield f"{_type(doc, schema)}."
        yield ""
        return
    required = set(schema.get("required", []))
    yield "| Field | Type | Required | Description |"
    yield "|---|---|---|---|"
    for name, spec in props.items():
        yes = "yes" if name in required else "no"
        yield f"| `{name}` | {_type(doc, spec)} | {yes} | {_cell(spec.get('description', ''))} |"
    yield ""


def _resolve(doc: Schema, schema: Schema) -> Schema:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: Schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def _type(doc: Schema, schema: Schema) -> str:
    """A schema as a short phrase: `string (3-63 chars)`, `[Job](#job) or null`, ..."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(doc, s) for s in schema["anyOf"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    text = " \\| ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array":
        text = f"array of {_type(doc, schema.get('items', {}))}"
    elif kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        if isinstance(extra, dict):
            text = f"object of {_type(doc, extra)}"
    return text + _bounds(schema)


def _bounds(schema: Schema) -> str:
    low = schema.get("minimum", schema.get("ge", schema.get("minLength")))
    high = schema.get("maximum", schema.get("le", schema.get("maxLength")))
    if low is None and high is None:
        return ""
    unit = " chars" if "minLength" in schema or "maxLength" in schema else ""
    if low is None:
        return f" (at most {high}{unit})"
    if high is None:
        return f" (at least {low}{unit})"
    return f" ({low} to {high}{unit})"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def main() -> None:
    from bucketjobs.api.app import create_app

    # The document needs the routes only: no database is reached to build it.
    app = create_app("postgresql://unused@127.0.0.1:1/unused", Path("/nonexistent"))
    print(render(app.openapi()), end="")


if __name__ == "__main__":
    main()
