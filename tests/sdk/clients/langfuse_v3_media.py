"""Drives the Langfuse Python SDK 3.x's media handling, unchanged: an image sent inline as a
base64 data URI (as OpenAI-style messages carry it) and a file attached as a `LangfuseMedia`,
which the SDK takes out of the spans, uploads through /api/public/media and replaces with
references; then reads them back as its users do, with `resolve_media_references`.

Arguments: one JSON object with host, public_key, secret_key and a run id; prints one JSON object
with the trace id, the observation's id, the references resolved back to data URIs, and every
warning or error the SDK logged (a failed upload shows up there).
"""

from __future__ import annotations

import base64
import json
import sys
import time

from collect import collect  # beside this script


def main() -> None:
    args = json.loads(sys.argv[1])
    errors = collect("langfuse", "opentelemetry")

    from langfuse import Langfuse
    from langfuse.media import LangfuseMedia

    run = args["run"]
    langfuse = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"])
    png = b"\x89PNG\r\n\x1a\n" + run.encode() * 50  # unique per run: a new medium each time
    image = "data:image/png;base64," + base64.b64encode(png).decode()
    pdf = LangfuseMedia(content_bytes=b"%PDF-1.4 " + run.encode() * 20, content_type="application/pdf")
    message = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}]
    with langfuse.start_as_current_span(name="vision", input={"messages": message}) as span:
        span.update(output={"report": pdf})
    langfuse.flush()
    langfuse.shutdown()

    reader = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], host=args["host"])
    for _ in range(300):  # until the stages have stored the span
        try:
            observation = reader.api.observations.get(span.id)
            break
        except Exception:
            time.sleep(0.1)
    resolved = reader.resolve_media_references(obj={"input": observation.input, "output": observation.output},
                                               resolve_with="base64_data_uri")  # fmt: skip
    print(
        json.dumps(
            {
                "trace_id": span.trace_id,
                "observation_id": span.id,
                "stored_input": observation.input,
                "resolved": resolved,
                "image": image,
                "pdf": "data:application/pdf;base64," + base64.b64encode(pdf._content_bytes or b"").decode(),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
